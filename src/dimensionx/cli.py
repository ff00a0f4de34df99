"""``dimensionx`` command line: the dispatcher. Each stage registers its subcommands and runs
through its own entry function; heavy imports (torch, diffusers) happen only in the command
that needs them, so ``--help`` answers at once."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from . import scenes
from .errors import DimensionXError
from .fourd import cli as fourd_cli
from .recon import cli as recon_cli
from .video import cli as video_cli

STAGES = (video_cli, recon_cli, scenes, fourd_cli)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dimensionx",
        description="Create 3D and 4D scenes from a single image with decoupled video diffusion.",
    )
    parser.add_argument("--version", action="version", version=f"dimensionx {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        stage.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args) or 0
    except DimensionXError as exc:
        print(f"dimensionx {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dimensionx {args.command}: interrupted; no partial output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
