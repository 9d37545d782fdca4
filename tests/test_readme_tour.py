"""README.md's tour, run as written: its own text, not a Python retelling of it (issue 23).

The shell blocks the README marks with `<!-- tour -->` are taken from README.md and run in order by one real
bash, in a fresh directory, with the installed `notary` (the venv's console script) first on PATH. Nothing
in their text is replaced. What the test provides is what the tour's opening sentence says it assumes: an
OCI layout at build/layout tagged v1 (the busybox image tests/support/images.py builds), a `$CI_JOB_ID`, and
a private NOTARY_LEDGER / NOTARY_STATE_DIR / HOME, so the tour's ledger and trust are this test's alone.

Each command must exit as its line says: 0, or the N of a trailing `# exit N` comment. The tour ends with
its own `gate check` admitting the image; then the image, unpacked as a runc bundle with the gate's hook
reading the tour's notary.toml, runs under a real runc, admitted by the hook (and, once revoked, refused).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notary.gate.oci_hook import HOOK_CODE
from tests.support.integration import require_tool
from tests.support.oci_runtimes import run_bundle
from tests.support.runtimes import runc_bundle

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = "<!-- tour -->"
NAME = "registry.example.com/team/app:1.0"  # the name the tour's gate check decides under
CI_JOB_ID = "8812"
BLOCK = re.compile(re.escape(MARKER) + r"\s*\n```(?:sh|bash|console)?[ \t]*\n(?P<body>.*?)^```", re.S | re.M)
EXPECT = re.compile(r"\s#\s*exit\s+(?P<code>\d+)\b")
HEREDOC = re.compile(r"<<-?\s*(?P<q>['\"]?)(?P<word>\w+)(?P=q)")


@dataclass(frozen=True)
class Step:
    line: int  # README line of the command's first line
    text: str  # the command as written (with its heredoc body or continuation lines)
    expect: int


def tour_blocks(readme: str) -> list[tuple[int, str]]:
    """(README line of the block's first command, block text) of every marked block, in order."""
    return [(readme.count("\n", 0, m.start("body")) + 1, m["body"]) for m in BLOCK.finditer(readme)]


def tour_steps(readme: str) -> list[Step]:
    """The commands of the marked blocks: one per line, a heredoc with its body, `\\` continuations joined."""
    steps: list[Step] = []
    for first, body in tour_blocks(readme):
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            start, line = i, lines[i]
            i += 1
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            text = [line]
            while text[-1].rstrip().endswith("\\") and i < len(lines):
                text.append(lines[i])
                i += 1
            heredoc = HEREDOC.search(line.split(" #", 1)[0])
            if heredoc:
                while i < len(lines) and lines[i].strip() != heredoc["word"]:
                    text.append(lines[i])
                    i += 1
                assert i < len(lines), f"README line {first + start}: heredoc {heredoc['word']} is not closed"
                text.append(lines[i])
                i += 1
            said = EXPECT.search(line)
            steps.append(Step(first + start, "\n".join(text), int(said["code"]) if said else 0))
    return steps


def tour_script(steps: list[Step], out: Path) -> str:
    """One bash script running every step in order (variables carry over), each step's output and status
    kept in out/, stopping at the first step that does not exit as the README says."""
    parts = ["cd \"$TOUR_DIR\" || exit 97\n"]
    for n, step in enumerate(steps):
        parts.append(f"{{\n{step.text}\n}} >{out}/{n}.out 2>{out}/{n}.err </dev/null\n"
                     f"rc=$?; echo \"$rc\" >{out}/{n}.rc; [ \"$rc\" -eq {step.expect} ] || exit 98\n")
    return "".join(parts)


class Walk:
    def __init__(self, home: Path, steps: list[Step], proc: subprocess.CompletedProcess[str], out: Path) -> None:
        self.home, self.steps, self.proc, self.out = home, steps, proc, out

    def result(self, n: int) -> tuple[int | None, str, str]:
        rc = self.out / f"{n}.rc"
        return (int(rc.read_text()) if rc.exists() else None, (self.out / f"{n}.out").read_text(errors="replace")
                if (self.out / f"{n}.out").exists() else "", (self.out / f"{n}.err").read_text(errors="replace")
                if (self.out / f"{n}.err").exists() else "")

    def failure(self) -> str:
        for n, step in enumerate(self.steps):
            code, out, err = self.result(n)
            if code != step.expect:
                return (f"README.md line {step.line}: `{step.text}` exited {code}, the README says {step.expect}\n"
                        f"stdout: {out[-3000:]}\nstderr: {err[-3000:]}")
        return f"bash exited {self.proc.returncode}: {self.proc.stderr[-3000:]}"

    def output_of(self, fragment: str) -> str:
        (n,) = [n for n, s in enumerate(self.steps) if fragment in s.text]
        return self.result(n)[1]


def environment(root: Path) -> dict[str, str]:
    """A new user's shell: notary from this venv first on PATH, no NOTARY_* or CI variables of the host, a
    ledger, trusted state and home of the test's own."""
    drop = ("GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "CIRCLECI", "TEKTON_PIPELINE_RUN", "CI_JOB_ID")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "XDG_")) and k not in drop}
    if "NOTARY_REQUIRE_INTEGRATION" in os.environ:
        env["NOTARY_REQUIRE_INTEGRATION"] = os.environ["NOTARY_REQUIRE_INTEGRATION"]
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(root / "home"),
        "NOTARY_LEDGER": (root / "ledger" / "ledger.db").as_uri(),
        "NOTARY_STATE_DIR": str(root / "state"),
        "CI_JOB_ID": CI_JOB_ID,
        "LC_ALL": "C.UTF-8",
    })
    return env


def walk_the_tour(root: Path, layout_template: Path) -> Walk:
    bash = require_tool("bash")
    notary = Path(sys.executable).parent / "notary"
    assert notary.is_file(), f"{notary}: the console script is not installed (pip install -e .)"
    home, out = root / "tour", root / "tour-output"
    for d in (home, out, root / "home", root / "ledger"):
        d.mkdir(parents=True)
    shutil.copytree(layout_template, home / "build" / "layout", symlinks=True)
    steps = tour_steps(README.read_text())
    script = root / "tour.sh"
    script.write_text(tour_script(steps, out))
    proc = subprocess.run([bash, "--noprofile", "--norc", str(script)], env={**environment(root), "TOUR_DIR": str(home)},
                          capture_output=True, text=True, timeout=600, check=False)
    return Walk(home, steps, proc, out)


# ------------------------------------------------------------------------------------------------ the text


def test_readme_marks_its_tour() -> None:
    """Deleting the markers (or the commands) fails here: the tour is never silently not run."""
    readme = README.read_text()
    assert readme.count(MARKER) >= 2 and len(tour_blocks(readme)) == readme.count(MARKER), \
        f"every {MARKER} must be followed by a ```sh block"
    commands = "\n".join(s.text for s in tour_steps(readme))
    for needed in ("notary key generate", "notary notarize", "notary verify", "notary revoke", "--reinstate",
                   "notary history", "notary get", "notary lookup", "notary audit diff", "notary evidence verify",
                   "notary gate check"):
        assert needed in commands, f"the README's tour lost `{needed}`"
    last = tour_steps(readme)[-1]
    assert last.text.startswith("notary gate check") and last.expect == 0, "the tour ends with a gate check that allows"


def test_tour_parser_reads_expected_failures_heredocs_and_continuations() -> None:
    text = (f"{MARKER}\n```sh\n"
            "notary verify x --key k    # exit 1: refused\n"
            "# a comment line\n"
            "cat > f <<'EOF'   # a heredoc\n[a]\nb = 1\nEOF\n"
            "notary a \\\n  --b c\n"
            "```\n")
    steps = tour_steps(text)
    assert [s.expect for s in steps] == [1, 0, 0]
    assert steps[1].text == "cat > f <<'EOF'   # a heredoc\n[a]\nb = 1\nEOF"
    assert steps[2].text == "notary a \\\n  --b c" and steps[0].line == 3
    assert tour_steps("```sh\nnotary verify x\n```\n") == [], "an unmarked block is not the tour"


# ------------------------------------------------------------------------------------------------ the walk


def _hook(walk: Walk, env: dict[str, str]) -> dict[str, Any]:
    """The Python hook of docs/gate.md (runc), with NOTARY_CONFIG naming the tour's notary.toml."""
    argv = [sys.executable, "-c", HOOK_CODE]
    return {"path": argv[0], "args": argv, "timeout": 30,
            "env": [f"NOTARY_CONFIG={walk.home / 'notary.toml'}", f"NOTARY_LEDGER={env['NOTARY_LEDGER']}",
                    f"NOTARY_STATE_DIR={env['NOTARY_STATE_DIR']}", "NOTARY_GATE_SOCKET=none",
                    "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}


def test_readme_tour_runs_as_written_and_its_image_runs_gated_under_runc(
        tmp_path: Path, busybox_layout_template: Path) -> None:
    walk = walk_the_tour(tmp_path, busybox_layout_template)
    assert walk.proc.returncode == 0, walk.failure()
    assert len(walk.steps) >= 20 and all((walk.out / f"{n}.rc").exists() for n in range(len(walk.steps)))

    # what the lines say they show
    assert "trusted" in walk.output_of("&& echo trusted").splitlines()
    history = walk.output_of("notary history oci:build/layout:v1")
    assert "notarized" in history and "revoked" in history and "reinstated" in history
    as_then = walk.output_of('--at-time "$notarized_at"')
    assert "notarized" in as_then and "revoked" not in as_then, as_then
    diff = walk.output_of('audit diff --from "$notarized_at"')
    assert "revocation" in diff and "reinstatement" in diff and "notarization " not in diff, diff
    assert "allowed:" in walk.output_of("notary gate check")

    # the run: the tour's image as a runc bundle, the hook deciding with the tour's notary.toml
    env = environment(tmp_path)
    layout = walk.home / "build" / "layout"
    trace = tmp_path / "trace"
    bundle = runc_bundle(layout, "v1", tmp_path / "bundle", trace, _hook(walk, env),
                         annotations={"dev.notary.image.name": NAME})
    proc = run_bundle("runc", bundle, tmp_path / "runc-state")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (trace / "ran").exists() and "hello" in proc.stdout

    # the admission was a decision: revoked, the same bundle no longer starts
    subprocess.run(["notary", "revoke", "oci:build/layout:v1", "--reason", "after the tour", "--key", "ci.key"],
                   cwd=walk.home, env=env, check=True, capture_output=True, timeout=120)
    (trace / "ran").unlink()
    refused = run_bundle("runc", bundle, tmp_path / "runc-state")
    assert refused.returncode != 0 and not (trace / "ran").exists()
    assert "revoked" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
