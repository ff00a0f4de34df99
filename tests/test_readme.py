"""The README's commands are the ones that work: CI runs its command 2 verbatim, and every
`dimensionx` line in it parses with the real command line (no stale flag or command)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dimensionx.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def code_lines(text: str) -> list[str]:
    """Lines of the ```bash blocks, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_installs_and_tests_exactly_as_readme_command_2():
    command_2 = next(line for line in code_lines(README) if line.endswith("python -m pytest") and "[test]" in line)
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert command_2 in ci, f".ci/run does not run README's command 2: {command_2}"
    assert "-q" not in command_2.split()  # a line of progress per test file, not a screen of dots


DIMENSIONX_LINES = [part.strip() for line in code_lines(README) for part in line.split("&&") if part.strip().startswith("dimensionx ")]


def test_readme_has_a_command_of_every_kind_for_a_cpu():
    cpu = [line for line in DIMENSIONX_LINES if "tiny" in line]
    commands = {shlex.split(line)[1] for line in cpu}
    assert {"video", "scene3d", "scene4d", "render4d", "make-dataset", "train", "app"} <= commands, commands


@pytest.mark.parametrize("line", DIMENSIONX_LINES)
def test_every_readme_command_parses(line):
    args = build_parser().parse_args(shlex.split(line)[1:])  # argparse exits (a failed test) on an unknown flag
    assert callable(args.run)
