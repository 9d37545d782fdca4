"""`notary audit report`: the proven `audit diff` as one self-contained HTML page, read in a real browser.

The ledger in most tests: A notarizes D (tx 1, job ja), B notarizes D (tx 2, jb), B revokes D with a reason that
is markup (tx 3), B reinstates it (tx 4, jb2, a reason with markup too), A notarizes E (tx 5, je). The page is
rendered by Debian's chromium (headless): its screenshot must show the timeline's colours, its DOM the
proven figures, and the reasons as text. Without chromium the browser test skips, or fails under
NOTARY_REQUIRE_INTEGRATION=1 (tests/support/integration.py).
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from notary import keys, records
from notary.audit import report as pages
from notary.audit.diff import Change, Diff, Finding
from notary.audit.report_svg import COLOURS, MAX_BUCKETS, MAX_LANES
from notary.cli.main import main as notary_main
from notary.ledger.base import TreeHead
from notary.ledger.embedded import EmbeddedLedger
from tests.support import png
from tests.support.cli import Notary, flip_envelope_byte
from tests.support.immudb import ImmudbServer, fresh_immudb_url
from tests.support.integration import require_tool

XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"
FIXED = 'fixed: <b onmouseover="alert(2)">really</b> & "quoted"'
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_FETCHING = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "background", "data",
             "ping", "manifest"}


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    return Notary(tmp_path)


def _ledger(notary: Notary) -> tuple[str, str, str, str]:
    a, b = notary.key("a"), notary.key("b")
    artifact, d = notary.notarize_file(a, b"release 7\n", job_id="ja")
    notary.run("notarize", str(artifact), "--job-id", "jb", "--key", str(b))
    notary.run("revoke", d, "--reason", XSS, "--key", str(b))
    notary.run("notarize", str(artifact), "--job-id", "jb2", "--key", str(b), "--reinstate", "--reason", FIXED)
    _, e = notary.notarize_file(a, b"release 8\n", name="e.bin", job_id="je")
    ids = [keys.key_id(keys.load_public_key(Path(f"{k}.pub"))) for k in (a, b)]
    return d, e, ids[0], ids[1]


def _chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless chromium run with a fresh profile (and HOME), so no run sees another's state."""
    profile = tmp_path / f"chromium-{len(list(tmp_path.glob('chromium-*')))}"
    profile.mkdir()
    result = subprocess.run([binary, *_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "HOME": str(profile)}, check=False)
    if result.returncode != 0:
        pytest.fail(f"chromium {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


class _Text(HTMLParser):
    """The text a reader sees (style contents left out) and every element's tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        self._style = tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._style = False

    def handle_data(self, data: str) -> None:
        if not self._style:
            self.parts.append(data)


def _read(dom: str) -> tuple[str, set[str]]:
    parser = _Text()
    parser.feed(dom)
    return " ".join(" ".join(parser.parts).split()), parser.tags


def _parsed(page: str) -> _Text:
    parser = _Text()
    parser.feed(page)
    parser.close()
    return parser


@pytest.mark.integration
def test_the_page_in_a_real_browser_shows_the_proven_figures_and_the_reasons_as_text(
        notary: Notary, tmp_path: Path) -> None:
    chromium = require_tool("chromium")  # Debian's chromium (Makefile DEBS); CI fails without it
    d, e, a, b = _ledger(notary)
    out = tmp_path / "report.html"
    result = notary.run("--json", "audit", "report", "--key", str(notary.root / "a.key.pub"), "-o", str(out)).json
    assert result["schema"] == "notary.audit-report/v1" and result["bytes"] == out.stat().st_size
    assert result["counts"] == {"notarization": 3, "reinstatement": 1, "revocation": 1} and not result["findings"]

    shot = tmp_path / "report.png"
    _chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", out.as_uri())
    image = png.decode(shot.read_bytes())
    assert (image.width, image.height) == (1200, 1600)
    colours = image.pixels()
    background = colours.most_common(1)[0][1]
    assert len(colours) > 200 and image.width * image.height - background > 100_000, (len(colours), background)
    for kind, hex_colour in COLOURS.items():  # the legend and the timeline's bars were drawn
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        assert colours[rgb] > 200, (kind, colours[rgb])

    dom = _chromium(chromium, tmp_path, "--dump-dom", out.as_uri()).stdout
    text, tags = _read(dom)
    assert not tags & {"script", "img", "iframe", "object", "embed", "link", "a"}, tags
    assert "<script" not in dom.lower() and XSS not in dom
    for figures in ("records 5", "notarizations 3", "revocations 1", "reinstatements 1", "signers 2",
                    "CI jobs 4", "subjects 2", "findings 0",
                    "transaction 0 5 5",  # the two heads (from, to) and the verified head
                    "VERIFIED: the range is proven complete and all 5 record(s)"):
        assert figures in text, (figures, text)
    head = result["head"]
    assert f"tree size 0 {head['tree_size']} {head['tree_size']}" in text and head["root_hash"] in text
    for needle in (a, b, d, e, "local/ja", "local/jb", "local/jb2", "local/je", XSS, FIXED, "NOT trusted"):
        assert needle in text, needle
    assert text.index("What could not be verified") < text.index("Nothing: every record in the range opened")


def test_ledger_strings_are_escaped_and_the_page_reaches_for_nothing(notary: Notary, tmp_path: Path) -> None:
    d, _, _, _ = _ledger(notary)
    out = tmp_path / "report.html"
    notary.run("audit", "report", "-o", str(out))
    page = out.read_text()
    assert XSS not in page and "<script" not in page.lower() and "<b onmouseover" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "fixed: &lt;b onmouseover=&quot;alert(2)&quot;&gt;really&lt;/b&gt; &amp; &quot;quoted&quot;" in page
    parsed = _parsed(page)  # nothing that loads, links or runs: no such element, no such attribute
    assert not parsed.tags & {"script", "img", "iframe", "object", "embed", "link", "a", "image", "use",
                              "foreignobject", "form", "base"}, parsed.tags
    assert not parsed.attributes & _FETCHING and not [a for a in parsed.attributes if a.startswith("on")]
    assert "url(" not in page and "@import" not in page.lower() and not re.search(r"(?i)https?:", page)
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'\"" in page
    assert d in page and "<svg" in page and "xmlns" not in page


def test_the_report_reads_what_audit_diff_reads(notary: Notary, tmp_path: Path) -> None:
    """Same points, same proven read: the same counts, ends and findings as `audit diff`."""
    _ledger(notary)
    first = notary.run("--json", "audit", "diff").json["changes"][1]["time"]
    for args in ([], ["--from", "2", "--to", "4"], ["--from", first, "--to", "latest"], ["--from", "5"]):
        diffed = notary.run("--json", "audit", "diff", *args).json
        reported = notary.run("--json", "audit", "report", *args, "-o", str(tmp_path / "r.html")).json
        assert reported["counts"] == diffed["counts"] and reported["findings"] == diffed["findings"], args
        assert [reported[k]["tx"] for k in ("from", "to")] == [diffed[k]["tx"] for k in ("from", "to")], args
        assert reported["head"]["root_hash"] == diffed["head"]["root_hash"]
    middle = notary.run("--json", "audit", "report", "--from", "2", "--to", "4", "-o", str(tmp_path / "m.html")).json
    ledger = EmbeddedLedger.open(notary.ledger_url, trust=None)
    try:
        for end in (middle["from"], middle["to"]):  # each end's root is the ledger's root at that size
            assert end["root_hash"] == ledger.tree_root(end["tree_size"]).hex()
            assert "consistency proof" in end["proof"]
    finally:
        ledger.close()
    empty = (tmp_path / "r.html").read_text()  # the last one: --from 5, nothing written after it
    assert "No records were written in this range." in empty and "Nothing: every record" in empty


def test_a_tampered_ledger_is_exit_3_and_writes_no_file(notary: Notary, tmp_path: Path) -> None:
    _ledger(notary)
    old = tmp_path / "old.html"
    old.write_text("the report of last month\n")
    assert flip_envelope_byte(notary.ledger_path) == 5
    for target in (tmp_path / "new.html", old):
        failed = notary.run("audit", "report", "-o", str(target), expect=3)
        assert "Traceback" not in failed.err and len(failed.err.strip().splitlines()) == 1, failed.err
    assert not (tmp_path / "new.html").exists() and old.read_text() == "the report of last month\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_records_that_do_not_open_are_listed_under_what_could_not_be_verified_and_exit_3(
        notary: Notary, tmp_path: Path) -> None:
    d, _, a, b = _ledger(notary)
    ledger = EmbeddedLedger.open(notary.ledger_url, trust=None)
    envelope = ledger.get(records.subject_key(d, a))
    assert envelope is not None
    ledger.write({records.subject_key(d, b): envelope.value, "subject/<i>not-a-digest</i>/x": b"hello"})
    ledger.close()
    out = tmp_path / "report.html"
    result = notary.run("--json", "audit", "report", "--from", "5", "-o", str(out), expect=3)
    assert {f["key"] for f in result.json["findings"]} == {records.subject_key(d, b), "subject/<i>not-a-digest</i>/x"}
    assert "do not open" in result.err
    page = out.read_text()
    assert "NOT VERIFIED: 2 record(s)" in page and "<i>" not in page
    assert "subject/&lt;i&gt;not-a-digest&lt;/i&gt;/x" in page and records.subject_key(d, b) in page


def test_bad_points_are_exit_2_and_write_nothing(notary: Notary, tmp_path: Path) -> None:
    _ledger(notary)
    out = tmp_path / "report.html"
    for args in (["--from", "9"], ["--from", "4", "--to", "2"], ["--from", "yesterday"], ["--to", "-1"]):
        failed = notary.run("audit", "report", *args, "-o", str(out), expect=2)
        assert len(failed.err.strip().splitlines()) == 1 and "Traceback" not in failed.err, (args, failed.err)
    notary.run("audit", "report", expect=2)  # -o is required
    failed = notary.run("audit", "report", "-o", str(tmp_path / "no" / "such" / "dir.html"), expect=2)
    assert "cannot write" in failed.err and len(failed.err.strip().splitlines()) == 1
    assert not out.exists()


def test_the_page_replaces_the_old_one_atomically(notary: Notary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Written beside the target, then renamed over it: a reader sees the old page or the new one, never half.
    A rename that fails leaves the old page and no temporary file."""
    _ledger(notary)
    out = tmp_path / "report.html"
    out.write_text("old page\n")
    renames: list[tuple[str, str, str, bytes]] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renames.append((str(src), str(dst), Path(dst).read_text(), Path(src).read_bytes()[:15]))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    with pytest.raises(SystemExit) as done:
        notary_main(["--ledger", notary.ledger_url, "audit", "report", "-o", str(out)])
    assert done.value.code == 0
    [(src, dst, before, head)] = renames
    assert Path(src).parent == tmp_path and Path(src).name.startswith(".report.html.") and dst == str(out)
    assert before == "old page\n" and head == b"<!DOCTYPE html>"
    assert out.read_text().startswith("<!DOCTYPE html>") and sorted(p.name for p in tmp_path.glob(".*")) == []
    capsys.readouterr()

    def broken(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError(28, "No space left on device")

    out.write_text("old page\n")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(SystemExit) as done:
        notary_main(["--ledger", notary.ledger_url, "audit", "report", "-o", str(out)])
    assert done.value.code == 2 and "cannot write" in capsys.readouterr().err
    assert out.read_text() == "old page\n" and sorted(p.name for p in tmp_path.glob(".*")) == []


# -- the page alone (pure): bounded output, hostile text ---------------------------------------------------

_HEAD = TreeHead("file:sha256:" + "ab" * 32, 300_000, b"\x01" * 32, 100_000, datetime(2026, 4, 1, tzinfo=timezone.utc))
_ABOUT = pages.About("file:///ledger.db", "file", "2026-04-01T00:00:00Z", "0.1.0")


def _point(point: str, tx: int) -> pages.PointHead:
    return pages.PointHead(point, tx, tx * 3, "cd" * 32, "2026-01-01T00:00:00Z", "checked")


def _changes(n: int, signers: int, jobs: int) -> list[Change]:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    types = ("notarization", "revocation", "notarization", "reinstatement")
    return [Change(tx=i + 1, time=(t0 + timedelta(seconds=i * 77)).isoformat().replace("+00:00", "Z"),
                   key=f"subject/x/{i}", type=types[i % 4], digest=f"sha256:{i % 5000:064x}",
                   signer=f"sha256:{i % signers:064x}", trusted=None, issued_at="2026-01-01T00:00:00Z",
                   reason=f"reason {i}" if i % 2 else None, ci={"system": "local", "jobId": f"j{i % jobs}"},
                   name=None) for i in range(n)]


def test_a_hundred_thousand_records_make_a_bounded_page() -> None:
    found = Diff(0, 100_000, _HEAD, _changes(100_000, signers=40, jobs=30_000), entries=300_000)
    page = pages.render(found, _HEAD, _point("0", 0), _point("latest", 100_000), _ABOUT)
    svg = page[page.index("<svg"):page.index("</svg>")]
    marks = svg.count("<rect")
    assert marks <= (MAX_LANES + 1) * (MAX_BUCKETS * 3 + 1) + 3, marks
    assert f"{40 - MAX_LANES} other signer(s)" in svg
    assert '<th><span style="color:#2563eb">■</span> notarizations</th><td class="n">50,000</td>' in page
    assert page.count("<tr>") <= 3 * pages.MAX_ROWS + 60
    assert "40,000 more revocations and reinstatements left out" in page
    assert "20,000 more CI jobs left out" in page
    assert len(page) < 12_000_000, len(page)


def test_tables_say_how_many_rows_they_left_out() -> None:
    found = Diff(0, 20, _HEAD, _changes(20, signers=7, jobs=20),
                 findings=[Finding(3, f"subject/{i}", "does not open") for i in range(4)])
    page = pages.render(found, _HEAD, _point("0", 0), _point("20", 20), _ABOUT, max_rows=3)
    for line in ("4 more signers left out", "17 more CI jobs left out",
                 "7 more revocations and reinstatements left out", "1 more findings left out"):
        assert line in page, line
    assert "NOT VERIFIED: 4 record(s)" in page


def test_control_and_direction_characters_are_shown_not_obeyed() -> None:
    assert pages.text("ok\u202eevil\x00<") == "ok\\u202eevil\\u0000&lt;"
    assert pages.text("\ud800 'x'") == "\\ud800 &#x27;x&#x27;"
    long = pages.text("a" * (pages.MAX_TEXT + 5))
    assert long.endswith("… (5 more characters)") and len(long) < pages.MAX_TEXT + 40


def test_on_immudb_the_ends_are_transactions_of_the_verified_replay(immudb_server: ImmudbServer,
                                                                    tmp_path: Path) -> None:
    """immudb's state is its Alh chain, not an RFC 9162 tree: the ends are shown by transaction and time (no
    root), the range proven complete by the mirror's replay; with the mirror off the report is refused."""
    user = Notary(tmp_path, ledger_url=fresh_immudb_url(immudb_server))
    user.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    key = user.key()
    _, digest = user.notarize_file(key, b"release 1", job_id="j1")
    start = user.run("--json", "ledger", "info").json["head"]["tx"]
    user.run("revoke", digest, "--reason", XSS, "--key", str(key))
    out = tmp_path / "report.html"
    result = user.run("--json", "audit", "report", "--from", str(start), "-o", str(out)).json
    assert result["counts"] == {"revocation": 1} and result["from"]["tx"] == start
    assert result["from"]["root_hash"] is None and "verified mirror" in result["to"]["proof"]
    assert result["to"]["tree_size"] in (None, result["head"]["tree_size"])
    page = out.read_text()
    assert XSS not in page and "&lt;script&gt;" in page and "immudb ledger" in page
    refused = user.run("audit", "report", "-o", str(tmp_path / "no.html"), env={"NOTARY_IMMUDB_MIRROR": "0"},
                       expect=2)
    assert "needs the verified mirror" in refused.err and not (tmp_path / "no.html").exists()
