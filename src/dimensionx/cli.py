"""``dimensionx`` command line: the dispatcher. Each stage registers its subcommands and runs
through its own entry function; heavy imports (torch, diffusers) happen only in the command
that needs them, so ``--help`` answers at once."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from . import __version__
from . import scenes
from .app import cli as app_cli
from .diskerrors import DISK_FULL, cannot_write
from .errors import DimensionXError
from .fourd import cli as fourd_cli
from .orbit import cli as orbit_cli
from .interrupts import Interrupted, handle_signals
from .models import cli as models_cli
from .recon import cli as recon_cli
from .train import cli as train_cli
from .video import cli as video_cli

STAGES = (video_cli, orbit_cli, models_cli, recon_cli, train_cli, scenes, fourd_cli, app_cli)


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
    handle_signals()
    show_progress_messages()
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args) or 0
    except DimensionXError as exc:
        print(f"dimensionx {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        where = exc.filename or getattr(args, "out", None) or getattr(args, "output_dir", None) or "the output"
        print(f"dimensionx {args.command}: error: {cannot_write(where, exc.errno)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or kill, also while importing or loading a model
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        kept = getattr(args, "kept_on_interrupt", None)  # a command that keeps finished work for a resume says what
        print(f"dimensionx {args.command}: interrupted by {signal.Signals(signum).name}; "
              f"{(kept and kept(args)) or 'no partial output was written'}", file=sys.stderr)
        return 128 + signum


def show_progress_messages() -> None:
    """Prints dimensionx's INFO messages; libraries keep their own levels (torch logs INFO lines at exit)."""
    logger = logging.getLogger("dimensionx")
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
