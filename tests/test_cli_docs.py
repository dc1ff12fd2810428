"""The command-line examples of the documentation are run, and their output is the output
shown (as doctests are for Python): every ``$ ketameta ...`` line of a ``console`` block in
``docs/*.md``, run in a copy of ``docs/examples/``. A ``...`` line in the shown output stands
for any lines (doctest's ELLIPSIS). And every option of every command is documented in
``docs/cli.md``.

When the output changes on purpose, ``python tests/test_cli_docs.py --update`` rewrites the
shown outputs (those without ``...``; it lists the others, to be edited by hand)."""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import shlex
import shutil
import sys
import tempfile
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


def _run(command: str, workdir: Path) -> tuple[int, str]:
    """(exit status, stdout and stderr interleaved as a terminal shows them) of a
    ``ketameta ...`` command run in `workdir` holding a copy of ``docs/examples/``."""
    for file in (DOCS / "examples").iterdir():
        shutil.copy(file, workdir)
    argv = shlex.split(command)[1:]
    out = io.StringIO()
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse
                status = int(exc.code or 0)
    finally:
        os.chdir(cwd)
    return status, out.getvalue()


_CHECKER = doctest.OutputChecker()


def _matches(shown: str, actual: str) -> bool:
    return _CHECKER.check_output(shown, actual, doctest.ELLIPSIS)


@pytest.mark.parametrize(
    ("page", "command", "shown"), EXAMPLES, ids=[f"{p}: {c}" for p, c, _ in EXAMPLES]
)
def test_command_examples_print_what_the_docs_show(
    tmp_path: Path, page: str, command: str, shown: str
) -> None:
    pytest.importorskip("formulaic")
    status, actual = _run(command, tmp_path)
    expected_status = 2 if shown.startswith("ketameta: error:") else 0
    assert status == expected_status, actual
    assert _matches(shown, actual), (
        f"docs/{page}: the output of `{command}` differs from the docs (update the pages "
        "with `python tests/test_cli_docs.py --update`):\n"
        + _CHECKER.output_difference(doctest.Example(command, shown), actual, doctest.ELLIPSIS)
    )


def update() -> list[str]:
    """Rewrite the shown output of every example of ``docs/*.md`` whose output changed and
    that elides nothing (no ``...`` line); return the examples with an elision whose
    output no longer matches (to be edited by hand)."""
    by_hand = []
    with tempfile.TemporaryDirectory() as tmp:
        for page in sorted(DOCS.glob("*.md")):
            text = page.read_text(encoding="utf-8")

            def rewrite(block: re.Match[str], page: Path = page) -> str:
                parts = re.split(r"^(?=\$ )", block[1], flags=re.M)
                for n, part in enumerate(parts):
                    if not part.startswith("$ ketameta"):
                        continue
                    command, _, shown = part.partition("\n")
                    _, actual = _run(command[2:], Path(tmp))
                    if _matches(shown, actual):
                        continue
                    if "\n...\n" in f"\n{shown}":
                        by_hand.append(f"docs/{page.name}: {command}")
                        continue
                    parts[n] = f"{command}\n{actual}"
                return "```console\n" + "".join(parts) + "```"

            new = re.sub(r"^```console\n(.*?)^```", rewrite, text, flags=re.M | re.S)
            if new != text:
                page.write_text(new, encoding="utf-8")
                print(f"updated docs/{page.name}")
    return by_hand


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


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_cli_docs.py --update")
    left = update()
    for example in left:
        print(f"edit by hand (its output elides lines): {example}")
    sys.exit(1 if left else 0)
