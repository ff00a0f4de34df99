"""The page: Gradio Blocks wired to ``callbacks.App``. Layout and glue only.

Every button runs in one queue, one job at a time (the model is on one accelerator); waiting
users see their position. A job's error shows in the page in words and the app keeps serving.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Callable

import gradio as gr
from gradio.context import LocalContext

from ..errors import DimensionXError
from .callbacks import MODES, NO_DIRECTOR, App, DirectorCard, VideoForm
from .jobs import Jobs
from .previews import write_previews

log = logging.getLogger(__name__)

FORM_FIELDS = [f.name for f in dataclasses.fields(VideoForm)]


class CheckedProgress(gr.Progress):
    """Gradio's tqdm-tracking progress bar that also stops a job the user cancelled, at its next step."""

    def __init__(self, jobs: Jobs):
        super().__init__(track_tqdm=True)
        self.jobs = jobs

    def __next__(self):
        self.jobs.check()
        return super().__next__()

    def update(self, n: int | float = 1):
        self.jobs.check()
        return super().update(n)


def shown_in_page(fn: Callable) -> Callable:
    """Errors become a message in the page (no traceback); the server keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DimensionXError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # a bug or an environment problem: logged in full, shown in one line
            log.exception("job failed")
            raise gr.Error(f"the job failed ({type(exc).__name__}: {exc}); the app keeps serving", print_exception=False) from None

    return wrapper


def caption(card: DirectorCard) -> str:
    weights = "weights found" if card.weights_found else "weights not found locally (downloaded on first use)"
    return f"{card.name} [{card.kind}] {card.description}. {weights}"


def build_ui(app: App) -> gr.Blocks:
    cards = app.directors()
    names = [c.name for c in cards]
    previews = write_previews(app.sessions.root / "previews")
    ttl = app.sessions.ttl_seconds
    defaults = app.defaults

    with gr.Blocks(title="DimensionX", delete_cache=(max(60, int(min(ttl, 3600))), int(ttl))) as demo:
        last_video = gr.State(None)
        gr.Markdown("# DimensionX\nOne photo, a camera motion, a video; then a 3D scene you can turn.")
        form: dict[str, gr.components.Component] = {}
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(label="Photo", type="filepath", sources=["upload", "clipboard"], elem_id="photo")
                form["prompt"] = gr.Textbox(label="Prompt", value=defaults.prompt, lines=2, placeholder="what the photo shows")
            with gr.Column(scale=3):
                gallery = gr.Gallery([(str(previews[c.name]), caption(c)) for c in cards], label="Directors: click one to pick it",
                                     columns=6, height=340, allow_preview=False, elem_id="directors")
                with gr.Row():
                    form["motion"] = gr.Dropdown([*names, NO_DIRECTOR], value=defaults.motion, label="Director", elem_id="motion")
                    form["mix_with"] = gr.Dropdown([NO_DIRECTOR, *names], value=defaults.mix_with, label="Mix with")
                    form["mix_weight"] = gr.Slider(0, 1, value=defaults.mix_weight, step=0.05, label="Weight of the first director")
                with gr.Row():  # Switch-Once: an S-Director, then a T-Director from a denoising step on
                    form["then"] = gr.Dropdown([NO_DIRECTOR, *names], value=NO_DIRECTOR, label="Then switch to")
                    form["switch_step"] = gr.Number(value=0, precision=0, label="at denoising step")
        with gr.Accordion("Advanced", open=False):
            with gr.Row():
                form["seed"] = gr.Number(value=defaults.seed, precision=0, label="Seed")
                form["steps"] = gr.Number(value=defaults.steps, precision=0, minimum=1, label="Steps")
                form["guidance"] = gr.Number(value=defaults.guidance, label="Guidance")
                form["frames"] = gr.Number(value=defaults.frames, precision=0, minimum=1, step=4, label="Frames (4k+1)")
                form["mode"] = gr.Radio(list(MODES), value=defaults.mode, label="Speed mode")
            settings = gr.UploadButton("Reproduce: load settings from a video's .json", file_types=[".json"])
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
            cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
        summary = gr.Markdown(elem_id="summary")
        with gr.Row():
            video = gr.Video(label="Video", autoplay=True, loop=True, interactive=False, elem_id="video")
            video_files = gr.File(label="Download: video and its settings", file_count="multiple", interactive=False)

        gr.Markdown("## 3D scene")
        with gr.Row():
            with gr.Column():
                upload = gr.Video(label="Video to reconstruct: the one generated above, or upload one here",
                                  sources=["upload"], elem_id="recon-upload")
                iterations = gr.Number(value=0, precision=0, minimum=0, label="Training iterations (0: the recon default)")
                build = gr.Button("Build 3D scene", variant="primary", elem_id="build")
            viewer = gr.Model3D(label="3D scene (drag to turn)", elem_id="viewer")
        with gr.Row():
            scene_files = gr.File(label="Download: PLY, .splat, cameras, metrics", file_count="multiple", interactive=False)
            metrics = gr.JSON(label="Held-out metrics", elem_id="metrics")
            orbit = gr.Video(label="Orbit render", interactive=False)

        gr.Markdown("## 4D scene\nThe photo (with the prompt, seed and speed mode above) as a scene that moves: "
                    "a T-Director video, an S-Director grid, then 4D Gaussians. Minutes on a GPU.")
        scene4d = gr.State(None)
        with gr.Row():
            build4d = gr.Button("Build 4D scene", variant="primary", elem_id="build4d")
            when = gr.Slider(0, 1, value=0.5, step=0.05, label="Time (0: the photo, 1: the end of the motion)", elem_id="time4d")
            render4d = gr.Button("Orbit at this time", elem_id="render4d")
        with gr.Row():
            orbit4d = gr.Video(label="Orbit at a fixed time", autoplay=True, loop=True, interactive=False, elem_id="orbit4d")
            timelapse4d = gr.Video(label="Time-lapse from the first view", autoplay=True, loop=True, interactive=False)
        with gr.Row():
            scene4d_files = gr.File(label="Download: canonical PLY, deformation, cameras, metrics, grid", file_count="multiple",
                                    interactive=False)
            metrics4d = gr.JSON(label="4D metrics")

        form_inputs = [form[name] for name in FORM_FIELDS]
        # `progress=gr.Progress(track_tqdm=True)` makes Gradio show the stages' tqdm bars (steps, ETA) in the page

        @shown_in_page
        def on_generate(data: dict, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
            LocalContext.progress.set(CheckedProgress(app.jobs))
            result = app.generate(request.session_hash, data[image], VideoForm(**{name: data[form[name]] for name in FORM_FIELDS}))
            return str(result.video), [str(result.video), str(result.sidecar)], result.summary, str(result.video)

        @shown_in_page
        def on_build(generated, uploaded, steps, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
            LocalContext.progress.set(CheckedProgress(app.jobs))
            result = app.build_scene(request.session_hash, uploaded or generated, int(steps) if steps else None)
            return (str(result.viewer), [str(p) for p in result.downloads], result.metrics,
                    str(result.orbit) if result.orbit else None)

        @shown_in_page
        def on_build4d(data: dict, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
            LocalContext.progress.set(CheckedProgress(app.jobs))
            result = app.build_scene4d(request.session_hash, data[image], VideoForm(**{name: data[form[name]] for name in FORM_FIELDS}))
            return result.name, str(result.orbit), str(result.timelapse), [str(p) for p in result.downloads], result.metrics

        @shown_in_page
        def on_render4d(name, time, request: gr.Request):
            return str(app.render4d_at(request.session_hash, name, float(time)))

        @shown_in_page
        def on_settings(sidecar):
            loaded = app.load_settings(sidecar)
            return [getattr(loaded, name) for name in FORM_FIELDS]

        def on_pick(evt: gr.SelectData):
            return names[evt.index]

        def on_cancel(request: gr.Request):
            app.jobs.cancel(request.session_hash)

        def on_open():
            app.sessions.sweep()

        generating = generate.click(on_generate, {image, *form_inputs}, [video, video_files, summary, last_video])
        building = build.click(on_build, [last_video, upload, iterations], [viewer, scene_files, metrics, orbit])
        building4d = build4d.click(on_build4d, {image, *form_inputs}, [scene4d, orbit4d, timelapse4d, scene4d_files, metrics4d])
        render4d.click(on_render4d, [scene4d, when], orbit4d)
        cancel.click(on_cancel, None, None, cancels=[generating, building, building4d], queue=False)
        gallery.select(on_pick, None, form["motion"], queue=False)
        settings.upload(on_settings, settings, form_inputs, queue=False)
        demo.load(on_open, None, None, queue=False)  # expired sessions go even when no job runs
    return demo


def launch(app: App, block: bool = True) -> gr.Blocks:
    """Serves the page on ``app.config.host:port``; files only from the session root and Gradio's upload cache."""
    config = app.config
    demo = build_ui(app)
    demo.queue(default_concurrency_limit=1, max_size=config.max_queue)
    demo.launch(server_name=config.host, server_port=config.port or None, max_file_size=int(config.max_upload_mb * 1e6),
                allowed_paths=[str(app.sessions.root)], show_error=True, prevent_thread_lock=not block, quiet=not block)
    return demo
