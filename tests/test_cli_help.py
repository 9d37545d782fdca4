"""Every command's `--help` shows examples that parse, and the installed `notary` produces its shell completion.

The help is read from the installed console script (`notary` in the venv's bin, as a user runs it), for every
command and subcommand the CLI lists. Each example line is then parsed by the command it names, with the
command's own click parser: an option that does not exist, a missing required option or argument, or a
misspelt subcommand fails the test, so the examples cannot drift from the options.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import click
import pytest

from notary.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
SHELL_OPERATORS = {"&&", "||", "|", ";", "<", ">", ">>", "2>", "&"}


def _entry_point() -> tuple[str, Path]:
    """The console script's name as the distribution declares it, and the installed script."""
    (script,) = [ep for ep in metadata.distribution("notary-ledger").entry_points
                 if ep.group == "console_scripts" and ep.value == "notary.cli.main:main"]
    path = Path(sys.executable).parent / script.name
    assert path.is_file(), f"{path}: the console script is not installed in this environment (pip install -e .)"
    return script.name, path


NAME, NOTARY = _entry_point()
COMPLETE_VAR = f"_{NAME.upper().replace('-', '_')}_COMPLETE"  # click's rule for the variable's name


def run_notary(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NOTARY), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **(env or {})}, check=False)


def command_paths() -> Iterator[tuple[str, ...]]:
    """Every command path the CLI lists: ("notarize",), ("gate", "check"), ..."""
    ctx = click.Context(cli, info_name=NAME)

    def walk(group: click.Group, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, f"{' '.join((*path, name))} is listed but does not load"
            yield (*path, name)
            if isinstance(command, click.Group):
                yield from walk(command, (*path, name))

    return walk(cli, ())


PATHS = list(command_paths())


def examples(help_text: str) -> list[str]:
    """The lines of the help's "Examples:" section (continuation lines joined)."""
    lines = help_text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Examples:"]
    if not starts:
        return []
    found: list[str] = []
    for line in lines[starts[0] + 1:]:
        if not line.strip() or not line.startswith(" "):
            break
        if found and found[-1].endswith("\\"):
            found[-1] = found[-1][:-1].rstrip() + " " + line.strip()
        else:
            found.append(line.strip())
    return found


def _option(command: click.Command, token: str) -> click.Option | None:
    name = token.split("=", 1)[0]
    return next((p for p in command.params if isinstance(p, click.Option) and name in (*p.opts, *p.secondary_opts)),
                None)


def parse_example(line: str) -> tuple[str, ...]:
    """Parse one example with the click command it names; its command path. Raises on a bad example."""
    words = shlex.split(line, comments=True)
    for i, word in enumerate(words):
        if word in SHELL_OPERATORS:
            words = words[:i]
            break
    assert words[:1] == [NAME], f"an example of notary should run notary: {line}"
    command: click.Command = cli
    path: list[str] = []
    rest = words[1:]
    while isinstance(command, click.Group):
        while rest and rest[0].startswith("-"):  # the group's own options, before its subcommand
            option = _option(command, rest[0])
            assert option is not None, f"{' '.join([NAME, *path])} has no option {rest[0]}: {line}"
            rest = rest[1 if option.is_flag or "=" in rest[0] else 2:]
        assert rest, f"no subcommand after {' '.join([NAME, *path])}: {line}"
        sub = command.get_command(click.Context(command, info_name=NAME), rest[0])
        assert sub is not None, f"{' '.join([NAME, *path])} has no command {rest[0]}: {line}"
        path.append(rest[0])
        command, rest = sub, rest[1:]
    try:
        command.make_context(" ".join([NAME, *path]), list(rest))
    except click.ClickException as error:
        raise AssertionError(f"`{line}` does not parse: {error.format_message()}") from error
    return tuple(path)


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    proc = run_notary(*path, "--help")
    assert proc.returncode == 0, proc.stderr
    found = examples(proc.stdout)
    assert found, f"`notary {' '.join(path)} --help` has no Examples: section:\n{proc.stdout}"
    parsed = [parse_example(line) for line in found]
    assert any(p[:len(path)] == path for p in parsed), f"no example runs `notary {' '.join(path)}`: {found}"


def test_the_top_level_help_has_examples_that_parse() -> None:
    proc = run_notary("--help")
    assert proc.returncode == 0, proc.stderr
    found = examples(proc.stdout)
    assert len(found) >= 3
    for line in found:
        for part in line.split("        "):  # `notary history ...        notary get ...`: two on one line
            parse_example(part)


def test_every_command_is_walked() -> None:
    """The walk sees the CLI as a user does: every top-level command and the subcommands of each group."""
    assert {("notarize",), ("verify",), ("gate", "check"), ("ledger", "info"), ("key", "generate"),
            ("audit", "diff"), ("evidence", "verify"), ("witness", "serve")} <= set(PATHS)


@pytest.mark.parametrize("line", [
    "notary verify oci:build/layout:v1 --keys ci.key.pub",  # no such option
    "notary revoke sha256:4f1c... --key ci.key",  # --reason is required
    "notary ledger infos",  # no such command
    "notary gate check",  # IMAGE missing
    "notary --ledgr file:///x ledger info",  # no such global option
])
def test_a_wrong_example_is_refused(line: str) -> None:
    with pytest.raises(AssertionError):
        parse_example(line)


# ------------------------------------------------------------------------------------------------ completion


def test_bash_completion_script_is_generated() -> None:
    proc = run_notary(env={COMPLETE_VAR: "bash_source"})
    assert proc.returncode == 0, proc.stderr
    assert f"complete -o nosort -F _notary_completion {NAME}" in proc.stdout
    assert f"{COMPLETE_VAR}=bash_complete" in proc.stdout
    # bash itself accepts it and registers the completion for the command
    bash = subprocess.run(["bash", "-c", 'eval "$1" && complete -p notary', "_", proc.stdout],
                          capture_output=True, text=True, timeout=60, check=False)
    assert bash.returncode == 0 and "_notary_completion notary" in bash.stdout, bash.stderr


@pytest.mark.parametrize(("words", "cword", "expected"), [
    ("notary ga", "1", {"plain,gate"}),
    ("notary gate ", "2", {"plain,check", "plain,install", "plain,oci-hook", "plain,webhook"}),
    ("notary ledger i", "2", {"plain,info", "plain,init"}),
])
def test_bash_completion_completes_commands(words: str, cword: str, expected: set[str]) -> None:
    """What the generated bash function asks the command: the lazily loaded subcommands complete too."""
    proc = run_notary(env={COMPLETE_VAR: "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword})
    assert proc.returncode == 0, proc.stderr
    assert expected <= set(proc.stdout.split()), proc.stdout


@pytest.mark.parametrize(("shell", "marker"), [("zsh", "#compdef notary"), ("fish", "complete --no-files --command notary")])
def test_zsh_and_fish_completion_scripts_are_generated(shell: str, marker: str) -> None:
    proc = run_notary(env={COMPLETE_VAR: f"{shell}_source"})
    assert proc.returncode == 0 and marker in proc.stdout, proc.stdout + proc.stderr


def test_readme_documents_the_completion_variable_of_the_installed_command() -> None:
    readme = (REPO / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"{COMPLETE_VAR}={shell}_source {NAME}" in readme, shell
