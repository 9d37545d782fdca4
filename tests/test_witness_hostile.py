"""Hostile peers of notary's C2SP witness code: numbers spelled another way, lying witnesses, lookalike vkeys.

Each attack goes over real HTTP on loopback where a server is involved: notary's own witness server, or a
tiny stdlib server playing a lying witness in front of an honest one. The point of each test: the input is
refused with one clear line (or dropped, for a witness's extra lines), and nothing it carried is believed.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from notary import keys
from notary.audit import note as notes
from notary.audit import points
from notary.audit.witness import Reply, Witness
from notary.errors import InputError, ProofError, UsageError
from tests.support.cli import Notary, Result
from tests.support.witnesses import served, witness_for
from tests.test_witness import Log

LOOKALIKE_SIZES = ["\u0661\u0662", "012", "+5", " 5", "5 ", "\u00b2", "1_0", "\uff15", str(1 << 64), "9" * 21]

Answer = Callable[[bytes], Reply]


@pytest.fixture
def log(tmp_path: Path) -> Log:
    found = Log(tmp_path / "ledger.db", tmp_path / "state")
    found.grow(5, "a")
    return found


@pytest.fixture
def server(tmp_path: Path, log: Log) -> Iterator[str]:
    with served(witness_for("w1", [log.verifier], tmp_path / "witness")) as url:
        yield url


@pytest.fixture
def lying() -> Iterator[Callable[[Answer], str]]:
    """Start lying witnesses: each a real HTTP server on loopback that answers POSTs with answer(body)."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Answer) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                reply = answer(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                return

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _one_clean_line(result: Result, kind: str) -> None:
    """The CLI contract for a refused input: one line on stderr naming the error kind, never a traceback."""
    assert "Traceback" not in result.err, result.err
    assert result.err.strip().count("\n") == 0 and result.err.startswith(f"notary: {kind}: "), result.err


def _signed_with_size(log: Log, size: str) -> notes.Note:
    """A checkpoint genuinely signed by the log key whose size line is `size`, spelled as given."""
    honest = log.note().text.split("\n")
    text = "\n".join([honest[0], size, *honest[2:]])
    return notes.Note(text, (notes.Signature(log.verifier.name, log.verifier.key_id, log.ledger.sign_checkpoint(text)),))


def _user_with_ledger(tmp_path: Path) -> tuple[Notary, str]:
    user = Notary(tmp_path)
    user.notarize_file(user.key(), b"release", job_id="j1")
    return user, user.run("ledger", "checkpoint", "--vkey").out.strip()


# -- 1. strict decimals ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", LOOKALIKE_SIZES)
def test_checkpoint_size_spelled_another_way_is_refused(log: Log, size: str) -> None:
    with pytest.raises(ProofError, match="checkpoint size"):
        notes.parse_checkpoint(_signed_with_size(log, size).text)


def test_checkpoint_sizes_spelled_the_one_way_still_parse(log: Log) -> None:
    for size in ("0", "5", str((1 << 64) - 1)):
        assert notes.parse_checkpoint(_signed_with_size(log, size).text).size == int(size)


def test_log_signed_checkpoint_with_arabic_digits_is_400_from_the_witness_and_exit_3_in_audit(
        server: str, log: Log, tmp_path: Path) -> None:
    """The log's own key signed "١٢": int() reads 12, another reader reads no number. Nobody may read 12."""
    for size in ("\u0661\u0662", "012", str(1 << 64)):
        answer = requests.post(server + "/add-checkpoint", data=b"old 0\n\n" + _signed_with_size(log, size).encode(),
                               timeout=10)
        assert answer.status_code == 400 and "checkpoint size" in answer.text, (size, answer.text)
    (tmp_path / "user").mkdir()
    user, _ = _user_with_ledger(tmp_path / "user")
    user.run("ledger", "checkpoint", "-o", str(tmp_path / "cp"))
    lines = (tmp_path / "cp").read_text().split("\n")
    (tmp_path / "cp").write_text("\n".join([lines[0], "\u0661", *lines[2:]]))
    _one_clean_line(user.run("audit", "checkpoint", str(tmp_path / "cp"), expect=3), "proof")


def test_add_checkpoint_old_superscript_is_400(server: str, log: Log) -> None:
    for old in ("\u00b2", "\u0661", "+0", " 0", "0 ", "00", str(1 << 64)):
        answer = requests.post(server + "/add-checkpoint", data=f"old {old}\n\n".encode() + log.note().encode(),
                               timeout=10)
        assert answer.status_code == 400 and "old size" in answer.text, (old, answer.status_code, answer.text)
    assert requests.post(server + "/add-checkpoint", data=log.body(0), timeout=10).status_code == 200


def _raw_post(url: str, headers: bytes, body: bytes) -> tuple[int, bytes]:
    """POST with header bytes exactly as given (no client library tidies them), over a loopback socket."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # Connection: close, so the answer ends at EOF (a kept-alive connection is parked, not closed)
        sock.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: witness\r\nConnection: close\r\n" + headers + b"\r\n"
                     + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("headers", [
    b"Content-Length: 1_0\r\n", "Content-Length: \u0661\r\n".encode(), b"Content-Length: \xb2\r\n",
    b"Content-Length: +5\r\n", b"Content-Length: 0x5\r\n", b"Content-Length: 05\r\n", b"Content-Length: -1\r\n",
    b"Content-Length: 99999999999999999999999\r\n", b"Content-Length: 5\r\nContent-Length: 5\r\n",
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
], ids=["underscore", "arabic", "latin1-superscript", "plus", "hex", "leading-zero", "negative", "huge",
        "two-lengths", "with-chunked"])
def test_content_length_lookalike_is_400(server: str, log: Log, headers: bytes) -> None:
    status, body = _raw_post(server, headers, b"x" * 16)
    assert status == 400, (headers, status, body)
    assert requests.get(server + "/healthz", timeout=5).text == "ok\n"
    assert requests.post(server + "/add-checkpoint", data=log.body(0), timeout=10).status_code == 200


def test_content_length_missing_is_411_and_with_spaces_around_it_is_read(server: str, log: Log) -> None:
    assert _raw_post(server, b"", b"")[0] == 411
    body = log.body(0)
    status, answer = _raw_post(server, b"Content-Length: \t" + str(len(body)).encode() + b" \r\n", body)
    assert status == 200, answer  # optional whitespace around a field value is HTTP syntax, not the number


@pytest.mark.parametrize("size", ["\u0661\u0662\n", "\u00b2\n", "+5\n", "5 \n", "05\n", f"{1 << 64}\n", "\n"])
def test_lying_witness_409_with_a_non_ascii_digit_is_a_clean_error(tmp_path: Path, lying: Callable[[Answer], str],
                                                                    size: str) -> None:
    url = lying(lambda body: Reply(409, size.encode(), "text/x.tlog.size"))
    user, _ = _user_with_ledger(tmp_path)
    refused = user.run("ledger", "checkpoint", "--witness", url, expect=3)
    _one_clean_line(refused, "proof")
    assert "409" in refused.err, refused.err


# -- 2. witness reply poisoning ----------------------------------------------------------------------------

def _checkpoint_text(request: bytes) -> str:
    """The checkpoint body of a tlog-witness add-checkpoint request: after the old line and proof lines."""
    return notes.parse_note(request.split(b"\n\n", 1)[1]).text


def _forged(text: str, honest: notes.Verifier, other: notes.Verifier, log_verifier: notes.Verifier) -> list[str]:
    """What a lying witness adds to an honest cosignature: every kind of line a reader must not take in."""
    now = struct.pack(">Q", 1_700_000_000)
    mallory = keys.generate_private_key()
    return [
        notes.Signature(other.name, other.key_id, now + os.urandom(64)).line(),  # a trusted witness, forged
        notes.cosign(text, "witness.test/mallory", mallory, 1_700_000_000).line(),  # type: ignore[arg-type]
        notes.Signature(honest.name, honest.key_id, now + bytes(64)).line(),  # a 2nd, bad line of the honest key
        notes.Signature(log_verifier.name, log_verifier.key_id, bytes(64)).line(),  # a bad line of the log key
        "\u2014 junk not-base64!\n",
        "not a signature line at all\n",
    ]


def test_lying_witness_smuggles_forged_cosignatures_only_the_honest_line_is_written(
        tmp_path: Path, lying: Callable[[Answer], str]) -> None:
    user, log_vkey = _user_with_ledger(tmp_path)
    log_verifier = notes.parse_vkey(log_vkey)
    honest_witness = Witness("witness.test/honest", keys.generate_private_key(), [log_verifier],  # type: ignore[arg-type]
                             tmp_path / "honest")
    honest = notes.parse_vkey(honest_witness.vkey)
    other = notes.verifier("witness.test/other", notes.COSIGNATURE_V1,
                           keys.generate_private_key().public_key())  # type: ignore[arg-type]

    def answer(body: bytes) -> Reply:
        reply = honest_witness.add_checkpoint(body)
        if reply.status != 200:
            return reply
        extra = _forged(_checkpoint_text(body), honest, other, log_verifier)
        return Reply(200, reply.body + "".join(extra).encode())

    url = lying(answer)
    for trusted in ([honest.vkey()], [honest.vkey(), other.vkey()]):
        out = tmp_path / f"cp-{len(trusted)}"
        args = [a for v in trusted for a in ("--witness-vkey", v)]
        run = user.run("ledger", "checkpoint", "--witness", url, *args, "-o", str(out))
        assert "dropped 6 of its 7 signature line(s)" in run.err, run.err
        written = notes.parse_note(out.read_bytes())
        assert [(s.name, s.key_id) for s in written.signatures] == [(log_verifier.name, log_verifier.key_id),
                                                                     (honest.name, honest.key_id)]
        assert set(notes.verified_by(written, [log_verifier, honest, other])) == {log_verifier.name, honest.name}
        user.run("audit", "checkpoint", str(out), *args, "--min-witnesses", "1")

    # without --witness-vkey nothing can be verified, but only well-formed lines of keys new to the note go in:
    # the junk and the second lines of the log's and the witness's keys (which would void the note) are dropped
    out = tmp_path / "cp-unchecked"
    run = user.run("ledger", "checkpoint", "--witness", url, "-o", str(out))
    assert "dropped 4 of its 7 signature line(s)" in run.err, run.err
    written = notes.parse_note(out.read_bytes())
    assert [s.name for s in written.signatures] == [log_verifier.name, honest.name, other.name,
                                                    "witness.test/mallory"]
    user.run("audit", "checkpoint", str(out), "--witness-vkey", honest.vkey(), "--min-witnesses", "1")


def test_lying_witness_with_no_verifying_line_is_refused(tmp_path: Path, lying: Callable[[Answer], str]) -> None:
    user, log_vkey = _user_with_ledger(tmp_path)
    honest = notes.verifier("witness.test/honest", notes.COSIGNATURE_V1,
                            keys.generate_private_key().public_key())  # type: ignore[arg-type]
    forged = notes.Signature(honest.name, honest.key_id, bytes(72)).line().encode()
    url = lying(lambda body: Reply(200, forged))
    refused = user.run("ledger", "checkpoint", "--witness", url, "--witness-vkey", honest.vkey(), "-o",
                       str(tmp_path / "cp"), expect=2)
    _one_clean_line(refused, "bad-input")
    assert "no cosignature by the --witness-vkey keys" in refused.err and not (tmp_path / "cp").exists()
    junk = lying(lambda body: Reply(200, b"junk\n\xe2\x80\x94 x !!\n"))
    _one_clean_line(user.run("ledger", "checkpoint", "--witness", junk, expect=3), "proof")


# -- 3. vkey key ids ---------------------------------------------------------------------------------------

def _vkey_with_letters_and_digits() -> tuple[str, str, str]:
    """A witness vkey whose hex key id holds both letters and digits, split into (name, id, key material)."""
    while True:
        vkey = notes.verifier("witness.test/w", notes.COSIGNATURE_V1,
                              keys.generate_private_key().public_key()).vkey()  # type: ignore[arg-type]
        name, hex_id, material = vkey.split("+", 2)
        if any(c in "abcdef" for c in hex_id) and any(c.isdigit() for c in hex_id):
            return name, hex_id, material


def test_vkey_key_id_must_be_eight_lowercase_hex_digits() -> None:
    name, hex_id, material = _vkey_with_letters_and_digits()
    assert notes.parse_vkey(f"{name}+{hex_id}+{material}").key_id == int(hex_id, 16)
    arabic = hex_id.translate({ord(d): 0x0660 + int(d) for d in "0123456789"})
    fullwidth = hex_id.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    lookalikes = [hex_id.upper(), hex_id[:7], hex_id + "0", "0" + hex_id, arabic, fullwidth, "0x" + hex_id[2:],
                  hex_id[:4] + "_" + hex_id[5:], "+" + hex_id[1:], " " + hex_id[1:], hex_id[:7] + "g", ""]
    for bad in lookalikes:
        with pytest.raises(InputError, match="8 lowercase hex digits"):
            notes.parse_vkey(f"{name}+{bad}+{material}")


def test_cli_refuses_a_vkey_with_an_uppercase_key_id(tmp_path: Path) -> None:
    user, _ = _user_with_ledger(tmp_path)
    user.run("ledger", "checkpoint", "-o", str(tmp_path / "cp"))
    name, hex_id, material = _vkey_with_letters_and_digits()
    refused = user.run("audit", "checkpoint", str(tmp_path / "cp"), "--witness-vkey",
                       f"{name}+{hex_id.upper()}+{material}", expect=2)
    _one_clean_line(refused, "bad-input")


# -- POINT: a transaction number read strictly -------------------------------------------------------------

def test_transaction_point_lookalikes_are_usage_errors(log: Log) -> None:
    head_tx = log.ledger.info().head.tx
    assert points.resolve(log.ledger, "1", head_tx) == 1 and points.resolve(log.ledger, " 0 ", head_tx) == 0
    for point in ("\u0661", "\u00b2", "+1", "-1", "01", "\uff11", str(1 << 64)):
        with pytest.raises(UsageError, match="transaction number"):
            points.resolve(log.ledger, point, head_tx)


def test_cli_audit_diff_refuses_an_arabic_digit_point(tmp_path: Path) -> None:
    user, _ = _user_with_ledger(tmp_path)
    _one_clean_line(user.run("audit", "diff", "--from", "\u0661", expect=2), "usage")

