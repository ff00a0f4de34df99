"""`--help` states the defaults that really apply: read from the stage's config dataclass, never typed by hand."""

from __future__ import annotations

import dataclasses
import re

import pytest

from dimensionx.cli import build_parser
from dimensionx.config import default_help
from dimensionx.models.config import ConvertConfig
from dimensionx.orbit.config import OrbitConfig
from dimensionx.video.config import VideoConfig


def test_default_help_reads_plain_and_factory_defaults():
    @dataclasses.dataclass
    class Knobs:
        scale: float = 6.0
        size: tuple[int, int] = dataclasses.field(default_factory=lambda: (240, 360))

    assert default_help(Knobs, "scale", "guidance") == "guidance (default 6)"
    assert default_help(Knobs, "size", "tile") == "tile (default (240, 360))"


def help_defaults(command: str) -> dict[str, str]:
    """{dest: the text after `(default` in its help} for the flags of ``command`` whose help states one."""
    commands = build_parser()._subparsers._group_actions[0].choices  # argparse keeps subparsers here
    found = {}
    for action in commands[command]._actions:
        match = re.search(r"\(default ([^)]*\)?)\)$", action.help or "")
        if match:
            found[action.dest] = match.group(1)
    return found


@pytest.mark.parametrize("command, config", [("video", VideoConfig), ("orbit", OrbitConfig), ("convert-sat", ConvertConfig)])
def test_every_stated_default_is_the_config_default(command, config):
    defaults = {f.name: getattr(config(), f.name) for f in dataclasses.fields(config)}
    # a None default is described in words (e.g. --lora-scale: 1/rank)
    stated = {dest: text for dest, text in help_defaults(command).items() if defaults.get(dest, None) is not None}
    assert len(stated) >= (1 if command == "convert-sat" else 9), stated
    for dest, text in stated.items():
        value = defaults[dest]
        assert text == (f"{value:g}" if isinstance(value, float) else str(value)), (command, dest, text, value)
