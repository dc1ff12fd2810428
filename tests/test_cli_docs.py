"""The command-line examples of the documentation are run, and their output is the output
shown (as doctests are for Python): every ``$ ketameta ...`` line of a ``console`` block in
``docs/*.md``, run in a copy of ``docs/examples/``. A ``...`` line in the shown output stands
for any lines (doctest's ELLIPSIS). And every option of every command is documented in
``docs/cli.md``."""

from __future__ import annotations

import contextlib
import doctest
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from ketameta.cli import build_parser, main

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _examples() -> list[tuple[str, str, str]]:
    """(page, command, shown output) of each ``$ ketameta`` line of a console block."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.M | re.S):
            for part in re.split(r"^(?=\$ )", block, flags=re.M):
                if part.startswith("$ ketameta"):
                    command, _, shown = part.partition("\n")
                    found.append((page.name, command[2:], shown))
    return found


EXAMPLES = _examples()


def test_the_docs_have_command_examples() -> None:
    assert len([e for e in EXAMPLES if e[0] == "cli.md"]) >= 8


@pytest.mark.parametrize(
    ("page", "command", "shown"), EXAMPLES, ids=[f"{p}: {c}" for p, c, _ in EXAMPLES]
)
def test_command_examples_print_what_the_docs_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str, command: str, shown: str
) -> None:
    pytest.importorskip("formulaic")
    for file in (DOCS / "examples").iterdir():
        shutil.copy(file, tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(command)[1:]
    out = io.StringIO()  # stdout and stderr interleaved, as a terminal shows them
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
    expected_status = 2 if shown.startswith("ketameta: error:") else 0
    actual = out.getvalue()
    assert status == expected_status, actual
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS
    assert checker.check_output(shown, actual, flags), (
        f"docs/{page}: the output of `{command}` differs from the docs:\n"
        + checker.output_difference(doctest.Example(command, shown), actual, flags)
    )


def test_every_option_of_every_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    missing = []
    for name, sub in commands.items():
        if f"ketameta {name}" not in text:
            missing.append(f"ketameta {name}")
        for action in sub._actions:
            longest = max(action.option_strings, key=len, default=None)
            if longest and longest != "--help" and f"`{longest}" not in text:
                missing.append(f"ketameta {name} {longest}")
    assert not missing, f"docs/cli.md does not document: {', '.join(missing)}"
