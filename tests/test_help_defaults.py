"""`--help` states the defaults that really apply: read from the stage's config dataclass, never typed by hand."""

from __future__ import annotations

import dataclasses
import re

import pytest

from dimensionx.cli import build_parser
from dimensionx.config import default_help
from dimensionx.app.config import AppConfig
from dimensionx.fourd.config import FourDConfig
from dimensionx.models.config import ConvertConfig
from dimensionx.orbit.config import OrbitConfig
from dimensionx.recon.config import ReconConfig
from dimensionx.train.config import DatasetConfig, TrainConfig
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


def field_defaults(config: type, prefix: str = "") -> dict:
    return {prefix + f.name: getattr(config(), f.name) for f in dataclasses.fields(config)}


# subcommand -> ({dest: the config default}, fewest defaults its help states)
COMMANDS = {
    "video": (field_defaults(VideoConfig), 9),
    "orbit": (field_defaults(OrbitConfig), 9),
    "convert-sat": (field_defaults(ConvertConfig), 1),
    "recon": (field_defaults(ReconConfig), 7),
    "scene3d": (field_defaults(ReconConfig) | field_defaults(VideoConfig, "video_"), 19),
    "scene4d": (field_defaults(FourDConfig), 20),
    "train": (field_defaults(TrainConfig), 13),
    "make-dataset": (field_defaults(DatasetConfig), 8),
    "app": (field_defaults(AppConfig), 7),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_stated_default_is_the_config_default(command):
    defaults, fewest = COMMANDS[command]
    # a None default is described in words (e.g. --lora-scale: 1/rank)
    stated = {dest: text for dest, text in help_defaults(command).items() if defaults.get(dest, None) is not None}
    assert len(stated) >= fewest, stated
    for dest, text in stated.items():
        value = defaults[dest]
        assert text == (f"{value:g}" if isinstance(value, float) else str(value)), (command, dest, text, value)
