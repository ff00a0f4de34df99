"""``dimensionx app``: the web page on the stage functions (Gradio)."""

from __future__ import annotations

import argparse
import logging

from ..config import config_from_args, default_help
from ..errors import DimensionXError
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
    """Warns when the app listens beyond this machine: anyone who reaches the port can run jobs."""
    if not is_loopback(config.host):
        log.warning("WARNING: --host %s serves the app to every machine that can reach port %d; it has no login. "
                    "Use the default 127.0.0.1 (with an SSH tunnel) unless this network is trusted.", config.host, config.port)


def run_app(args: argparse.Namespace) -> int:
    config = config_from_args(AppConfig, args)
    if config.port < 0 or config.port > 65535:
        raise DimensionXError(f"--port {config.port} is not a TCP port: pass 1-65535, or 0 for a free one")
    check_host(config)
    from .callbacks import App
    from .ui import launch

    launch(App(config))
    return 0
