"""``dimensionx app``: the web page on the stage functions (Gradio)."""

from __future__ import annotations

import argparse
import logging
import math
import socket

from ..config import config_from_args, default_help
from ..errors import DimensionXError
from ..imagefiles import MAX_IMAGE_PIXELS
from .config import AppConfig, is_loopback

log = logging.getLogger(__name__)


def register(commands) -> None:
    app = commands.add_parser(
        "app", help="web page: pick a motion, watch the video, build and turn the 3D scene",
        description="Serve the DimensionX web app (Gradio). Binds to 127.0.0.1 unless --host says otherwise.")
    app.add_argument("--model", help=default_help(AppConfig, "model", 'video model: hub id, local diffusers folder, or "tiny" (random weights, for demos)'))
    app.add_argument("--lora-dir", help="folder searched for director files by name")
    app.add_argument("--device", help=default_help(AppConfig, "device", "auto, cuda, cuda:N or cpu"))
    app.add_argument("--host", help=default_help(AppConfig, "host", "interface to listen on; 0.0.0.0 opens the app to the network"))
    app.add_argument("--port", type=int, help=default_help(AppConfig, "port", "TCP port; 0: the first free one from the default"))
    app.add_argument("--share-dir", help="root of the per-session output folders (default: <system temp>/dimensionx-app)")
    app.add_argument("--session-ttl-minutes", type=float, help=default_help(AppConfig, "session_ttl_minutes", "a session's files are removed this long after its last job"))
    app.add_argument("--max-upload-mb", type=float, help=default_help(AppConfig, "max_upload_mb", "largest accepted upload, MB"))
    app.add_argument("--max-image-megapixels", type=float, help=default_help(AppConfig, "max_image_megapixels", "largest accepted input image, megapixels"))
    app.add_argument("--video-config", help="YAML preset or JSON sidecar for the form's defaults (e.g. configs/tiny.yaml)")
    app.add_argument("--recon-config", help="YAML ReconConfig for 'Build 3D scene' (e.g. configs/recon.yaml)")
    app.add_argument("--fourd-config", help="YAML FourDConfig for 'Build 4D scene' (e.g. configs/fourd.yaml)")
    app.add_argument("--config", help="YAML AppConfig (configs/app.yaml); flags override it")
    app.set_defaults(run=run_app)


def check_host(config: AppConfig) -> None:
    """Refuses a ``--host`` that is not an address of this machine (the server would log the error and run on,
    serving nothing); warns when the app listens beyond this machine: anyone who reaches the port can run jobs."""
    try:
        family, _, _, _, address = socket.getaddrinfo(config.host, None, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address[0], 0))  # any free port: only the address is checked here
    except OSError as exc:  # socket.gaierror for a name that does not resolve
        raise DimensionXError(f"--host {config.host} is not an address of this machine ({exc.strerror or exc}): use "
                              "127.0.0.1 (the default) for this machine only, or 0.0.0.0 for every network") from None
    if not is_loopback(config.host):
        log.warning("WARNING: --host %s serves the app to every machine that can reach port %d; it has no login. "
                    "Use the default 127.0.0.1 (with an SSH tunnel) unless this network is trusted.", config.host, config.port)


def check_limits(config: AppConfig) -> None:
    """The app's sizes and times: positive, finite, and no image larger than the tool decodes at all."""
    for flag, value, high in (("--session-ttl-minutes", config.session_ttl_minutes, 60 * 24 * 365),
                              ("--max-upload-mb", config.max_upload_mb, 1e6),
                              ("--max-image-megapixels", config.max_image_megapixels, MAX_IMAGE_PIXELS / 1e6),
                              ("max_queue", config.max_queue, 10_000), ("viewer_times", config.viewer_times, 1000)):
        if not (math.isfinite(value) and 0 < value <= high):
            raise DimensionXError(f"{flag} {value}: more than 0 and at most {high:g} (the default is "
                                  f"{getattr(AppConfig, flag.lstrip('-').replace('-', '_')):g})")


def check_files(config: AppConfig) -> None:
    """``--share-dir`` can be a folder, and the stage configs the jobs will load are readable, before the page is served."""
    from pathlib import Path

    from ..config import load_config
    from ..fourd.config import FourDConfig
    from ..recon.config import ReconConfig

    if config.share_dir:
        share = Path(config.share_dir)
        blocked = next((p for p in (share, *share.parents) if p.exists() and not p.is_dir()), None)
        if blocked is not None:
            raise DimensionXError(f"--share-dir {share}: {blocked} is a file, not a folder; pass a folder for the "
                                  "sessions' files")
    for cls, path in ((ReconConfig, config.recon_config), (FourDConfig, config.fourd_config)):
        if path:
            load_config(cls, path)


def run_app(args: argparse.Namespace) -> int:
    config = config_from_args(AppConfig, args)
    if config.port < 0 or config.port > 65535:
        raise DimensionXError(f"--port {config.port} is not a TCP port: pass 1-65535, or 0 for a free one")
    check_limits(config)
    check_files(config)
    check_host(config)
    from .callbacks import App
    from .ui import launch

    launch(App(config))
    return 0
