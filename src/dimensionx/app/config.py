"""``AppConfig``: every knob of ``dimensionx app``, importable without Gradio or torch (fast ``--help``)."""

from __future__ import annotations

import dataclasses

from ..models.hub import DEFAULT_MODEL

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclasses.dataclass
class AppConfig:
    model: str = DEFAULT_MODEL  # hub id, local diffusers folder, or "tiny"; loaded once, on the first job
    lora_dir: str | None = None  # folder searched for director files by name
    device: str = "auto"  # "auto", "cuda", "cuda:1", "cpu"
    host: str = "127.0.0.1"  # interface the server listens on; anything but loopback opens the app to the network
    port: int = 7860  # TCP port; 0: the first free one from 7860
    share_dir: str | None = None  # root of the per-session output folders; None: <system temp>/dimensionx-app
    session_ttl_minutes: float = 120.0  # a session's folder is removed this long after its last job
    max_upload_mb: float = 50.0  # largest accepted upload (image, video or sidecar), in MB
    max_image_megapixels: float = 40.0  # largest accepted input image, in millions of pixels
    max_queue: int = 20  # jobs waiting beyond this are refused with "the queue is full"
    video_config: str | None = None  # YAML preset or JSON sidecar giving the form's defaults (configs/video.yaml)
    recon_config: str | None = None  # YAML ReconConfig for "Build 3D scene" (configs/recon.yaml)
    fourd_config: str | None = None  # YAML FourDConfig for "Build 4D scene" (configs/fourd.yaml)
    viewer_times: int = 9  # times of a 4D scene the page's viewer steps through (one .splat each)
    gradio_analytics: bool = False  # Gradio's usage analytics (sent to Gradio's servers); off unless asked for


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS
