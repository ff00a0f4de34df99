"""The page: Gradio Blocks wired to ``callbacks.App``. Layout and glue only.

Every job button submits its job to the app's own queue (``jobs.Jobs``: one worker thread owns
the accelerator) and then waits for it with a Gradio event that streams the job's place, ETA and
progress into the page. A page that goes away drops only its wait; the job runs on. A
browser keeps its session through reloads (``access.py``'s cookie): the page restores the
session's newest results on load, with the photo and form its newest job was asked with (also a failed
one), polls for a job that finishes while it was away, and lists earlier results under *History*, where
picking one shows it again with its photo and form. Every error and every cancel ends in one sentence in the page
(``#notice``) and leaves the results shown as they were; a job that fails or is cancelled while no
page waits for it is told once, by the next page of the session that opens or polls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import re
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr
from gradio.context import LocalContext
from starlette.middleware import Middleware

from ..errors import DimensionXError
from .access import SessionFiles, session_of
from .callbacks import (BUILD, BUILD4D, GENERATE, NO_DIRECTOR, App, Asked, DirectorCard, Scene4DResult, SceneResult,
                        VideoForm, VideoResult, asked_of, check_scene_video)
from .jobs import FAILED, Bar, Job, Jobs, Status
from .previews import write_previews
from .uploads import check_image_upload
from .viewer import STATIC, scene_view, viewer_html
from ..video.modes import MODES

log = logging.getLogger(__name__)

FORM_FIELDS = [f.name for f in dataclasses.fields(VideoForm)]
PROGRESS_SECONDS = 0.5  # how often a waiting page's progress bar is updated from its job
POLL_SECONDS = 3.0  # how often an open page asks for results of jobs it did not start (e.g. before a reload)
STOP_SECONDS = 30.0  # at Ctrl-C or SIGTERM, how long the running job may take to reach its next step and stop
EXAMPLES = Path(__file__).resolve().parents[3] / "assets" / "examples.json"  # made by assets/make_example.py
PREVIEWS = "previews"  # the director previews' folder in the share folder: served to every session
FLAG_LABELS = {"--frames": "Frames", "--steps": "Steps", "--seed": "Seed", "--guidance": "Guidance", "--motion": "Director",
               "--then": "Then switch to", "--switch-step": "at denoising step", "--mode": "Speed mode", "--prompt": "Prompt",
               "--iterations": "Training iterations"}  # command-line flags named in stage errors -> the page's fields
METRIC_LABELS = {"psnr": "PSNR on held-out frames (dB)", "ssim": "SSIM on held-out frames", "n_gaussians": "Gaussians",
                 "frames_registered": "frames registered by SfM", "frames_used": "frames used", "holdout_frames": "held-out frames",
                 "reprojection_error_px": "SfM reprojection error (px)", "iterations": "training iterations",
                 "seconds": "seconds", "device": "device", "psnr_per_time": "PSNR per time (dB)",
                 "psnr_per_holdout_view": "PSNR per held-out view (dB)"}
CSS = """
#directors .caption-label { white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  font-size: 11px; line-height: 1.2; }
.dx-splat { min-height: 420px; background: #101218; border-radius: 8px; overflow: hidden; }
.dx-splat canvas { display: block; width: 100%; height: 420px; cursor: grab; }
.dx-empty { color: #9aa3b5; display: flex; align-items: center; justify-content: center; padding: 1em; text-align: center; }
.dx-time { display: flex; gap: 10px; align-items: center; padding: 6px 10px; color: #dfe3ea; }
.dx-time input { flex: 1; }
.dx-time span { color: #dfe3ea; font-size: 13px; }
#notice:not(:empty) { font-weight: 600; }
"""


class JobProgress(gr.Progress):
    """Gradio's tqdm hook, in the job worker: every progress step of a job (a bar opened, advanced or closed)
    checks for Cancel and tells ``Jobs`` which bar runs and how far it is."""

    def __init__(self, jobs: Jobs):
        super().__init__(track_tqdm=True)
        self.jobs = jobs

    def _progress_callback(self):  # Gradio's own reports to a page: not from the worker, which serves no event
        return self._report

    def _report(self, iterables) -> None:
        self.jobs.check()
        bar = iterables[-1] if iterables else None  # the innermost bar
        self.jobs.progress(Bar(id(bar), int(bar.index or 0), bar.length, bar.desc) if bar else None)


@contextlib.contextmanager
def tracking(jobs: Jobs) -> Iterator[None]:
    """Around a job in the worker thread: tqdm bars opened by the job report to ``jobs`` (the worker's context only)."""
    token = LocalContext.progress.set(JobProgress(jobs))
    try:
        yield
    finally:
        LocalContext.progress.reset(token)


def show_progress(progress: gr.Progress, status: Status) -> None:
    """A job's status as the waiting page's progress bar: steps (12/50) in a bar, else the measured share gone by
    (0 where nothing was measured yet: Gradio shows no words without a bar)."""
    if status.index is not None:
        progress((status.index, status.length), desc=status.line(), unit="steps")
    else:
        progress(status.fraction or 0.0, desc=status.line())


def for_the_page(message: str) -> str:
    """A stage's message as the page shows it: file names instead of server paths, the page's fields instead of flags."""
    message = re.sub(r"(?<![\w.])/[^\s'\"`,;()]+", lambda m: Path(m.group(0)).name, message)
    return re.sub(r"--[a-z][a-z0-9-]*", lambda m: f"*{FLAG_LABELS[m.group(0)]}*" if m.group(0) in FLAG_LABELS
                  else f"the {m.group(0)[2:].replace('-', ' ')} setting", message)


def in_words(message: str) -> str:
    """An error or cancel as the notice shows it."""
    return f"⚠ {for_the_page(message)}"


def ended(job: Job) -> str:
    """Why ``job`` (failed or cancelled) did not finish, naming its button."""
    return f"{job.what} did not finish: {job.error}"


def shown_in(notice: gr.Markdown, cleared: dict | None = None) -> Callable[[Callable], Callable]:
    """A decorator for handlers that return ``{component: value}``: errors and cancels become one sentence in
    ``notice`` (and a toast) and the results shown stay as they were (``cleared``: values set on an error);
    success clears ``notice``."""

    def in_page(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                updates = fn(*args, **kwargs)
            except DimensionXError as exc:
                message = str(exc)
            except Exception as exc:  # a bug or an environment problem: logged in full, shown in one line
                log.exception("job failed")
                message = FAILED.format(type(exc).__name__)
            else:
                return {notice: "", **updates}
            gr.Warning(for_the_page(message))
            return {notice: in_words(message), **(cleared or {})}

        return wrapper

    return in_page


def unread_upload(box: gr.Image) -> gr.Image:
    """``box`` handing the app the uploaded file's path unread, so the app's own check judges it (Gradio's
    decoding would fail on a non-image with its internals and a temp path). Set on the instance: a
    subclass of a Gradio component makes Gradio write a .pyi file beside this module."""
    box.preprocess = lambda payload: None if payload is None else payload.path
    return box


def caption(card: DirectorCard) -> str:
    return f"{card.name} [{card.kind}]"


def about(card: DirectorCard) -> str:
    weights = "weights found" if card.weights_found else "weights not found locally (downloaded on first use)"
    return f"**{card.name}** [{card.kind}]: {card.description}. {weights}."


def metrics_table(metrics: dict) -> str:
    """The metrics as a two-column Markdown table (lists shortened to their values, rounded)."""
    def shown(value):
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        if isinstance(value, list):
            return ", ".join(shown(v) for v in value)
        if isinstance(value, dict):  # e.g. seconds per stage
            return ", ".join(f"{k} {shown(v)}" for k, v in value.items())
        return "" if value is None else str(value)

    rows = "\n".join(f"| {METRIC_LABELS.get(k, k)} | {shown(v)} |" for k, v in metrics.items() if v is not None)
    return f"| metric | value |\n|---|---|\n{rows}" if rows else ""


def file_url(path: Path) -> str:
    return f"/gradio_api/file={path}"


def build_ui(app: App) -> gr.Blocks:
    app.jobs.track = functools.partial(tracking, app.jobs)  # the worker's tqdm bars report to the queue
    cards = app.directors()
    names = [c.name for c in cards]
    previews = write_previews(app.sessions.root / PREVIEWS)
    ttl = app.sessions.ttl_seconds
    defaults = app.defaults
    examples = json.loads(EXAMPLES.read_text()) if EXAMPLES.is_file() else []  # absent where the package is installed alone

    with gr.Blocks(title="DimensionX", delete_cache=(max(60, int(min(ttl, 3600))), int(ttl)),
                   analytics_enabled=app.config.gradio_analytics) as demo:
        last_video = gr.State(None)
        job = gr.State(None)  # the id of the job this page submitted last, which it waits for
        gr.Markdown("# DimensionX\nOne photo, a camera motion, a video; then a 3D scene you can turn, or a 4D scene that moves.")
        form: dict[str, gr.components.Component] = {}
        with gr.Row():
            with gr.Column(scale=2):
                image = unread_upload(gr.Image(label="Photo", type="filepath", sources=["upload", "clipboard"], elem_id="photo"))
                form["prompt"] = gr.Textbox(label="Prompt", value=defaults.prompt, lines=2, placeholder="what the photo shows",
                                             elem_id="prompt")
            with gr.Column(scale=3):
                gallery = gr.Gallery([(str(previews[c.name]), caption(c)) for c in cards], label="Directors: click one to pick it",
                                     columns=6, height=300, allow_preview=False, elem_id="directors")
                director = gr.Markdown(about(next(c for c in cards if c.name == defaults.motion)) if defaults.motion in names else "",
                                       elem_id="director-about")
                with gr.Row():
                    form["motion"] = gr.Dropdown([*names, NO_DIRECTOR], value=defaults.motion, label="Director", elem_id="motion")
                    form["mix_with"] = gr.Dropdown([NO_DIRECTOR, *names], value=defaults.mix_with, label="Mix with")
                    form["mix_weight"] = gr.Slider(0, 1, value=defaults.mix_weight, step=0.05, label="Weight of the first director")
                with gr.Row():  # Switch-Once: an S-Director, then a T-Director from a denoising step on
                    form["then"] = gr.Dropdown([NO_DIRECTOR, *names], value=NO_DIRECTOR, label="Then switch to")
                    form["switch_step"] = gr.Number(value=0, precision=0, label="at denoising step")
        if examples:
            gr.Examples([[str(EXAMPLES.parent / e["photo"]), e["prompt"]] for e in examples], [image, form["prompt"]],
                        label="Examples: click one to load its photo and prompt", elem_id="examples")
        with gr.Accordion("Advanced", open=False, elem_id="advanced"):
            with gr.Row():
                form["seed"] = gr.Number(elem_id="form-seed", value=defaults.seed, precision=0, label="Seed")
                form["steps"] = gr.Number(elem_id="form-steps", value=defaults.steps, precision=0, minimum=1, label="Steps")
                form["guidance"] = gr.Number(elem_id="form-guidance", value=defaults.guidance, label="Guidance")
                form["frames"] = gr.Number(elem_id="form-frames", value=defaults.frames, precision=0, minimum=1, step=4, label="Frames (4k+1)")
                form["mode"] = gr.Radio(list(MODES), value=defaults.mode, label="Speed mode")
            settings = gr.UploadButton("Reproduce: load settings from a video's .json", file_types=[".json"], elem_id="reproduce")
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
            cancel = gr.Button("Cancel", variant="secondary", elem_id="cancel")
        notice = gr.Markdown(elem_id="notice")
        running = gr.Markdown(elem_id="running")  # a job of this session that this page did not start (e.g. before a reload)
        summary = gr.Markdown(elem_id="summary")
        with gr.Row():
            video = gr.Video(label="Video", autoplay=True, loop=True, interactive=False, elem_id="video")
            video_files = gr.File(label="Download: video and its settings", file_count="multiple", interactive=False)

        gr.Markdown("## 3D scene")
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.Video(label="Video to reconstruct: the one generated above, or upload one here",
                                  sources=["upload"], elem_id="recon-upload")
                iterations = gr.Number(value=0, precision=0, minimum=0, label="Training iterations (0: the recon default)")
                build = gr.Button("Build 3D scene", variant="primary", elem_id="build")
            with gr.Column(scale=3):
                viewer = gr.HTML(viewer_html(None, file_url), label="3D scene: drag to turn, scroll to zoom", elem_id="viewer")
        with gr.Row():
            metrics = gr.Markdown(elem_id="metrics")
            scene_files = gr.File(label="Download: PLY, .splat, cameras, metrics", file_count="multiple", interactive=False)
            orbit = gr.Video(label="Orbit render", interactive=False)

        gr.Markdown("## 4D scene\nThe photo (with the prompt, seed and speed mode above) as a scene that moves: "
                    "a T-Director video, an S-Director grid, then 4D Gaussians. Minutes on a GPU. "
                    "Turn it in the viewer while the time slider (or Play) moves it.")
        build4d = gr.Button("Build 4D scene", variant="primary", elem_id="build4d")
        viewer4d = gr.HTML(viewer_html(None, file_url), elem_id="viewer4d")
        with gr.Row():
            orbit4d = gr.Video(label="Orbit at mid-time", autoplay=True, loop=True, interactive=False, elem_id="orbit4d")
            timelapse4d = gr.Video(label="Time-lapse from the first view", autoplay=True, loop=True, interactive=False)
        with gr.Row():
            metrics4d = gr.Markdown(elem_id="metrics4d")
            scene4d_files = gr.File(label="Download: canonical PLY, deformation, cameras, metrics, grid", file_count="multiple",
                                    interactive=False)

        gr.Markdown("## History")
        history = gr.Dropdown([], value=None, label="Earlier results of this browser: pick one to show it again", elem_id="history")
        shown = gr.State([])  # the job folders this page knows of (History), to notice new ones
        timer = gr.Timer(POLL_SECONDS)

        form_inputs = [form[name] for name in FORM_FIELDS]

        in_page = shown_in(notice)

        def video_shown(result: VideoResult) -> dict:
            return {video: str(result.video), video_files: [str(result.video), str(result.sidecar)], summary: result.summary,
                    last_video: str(result.video), upload: str(result.video)}

        def scene_shown(result: SceneResult) -> dict:
            return {viewer: viewer_html(scene_view([result.viewer], result.cameras), file_url),
                    scene_files: [str(p) for p in result.downloads], metrics: metrics_table(result.metrics),
                    orbit: str(result.orbit) if result.orbit else None}

        def scene4d_shown(result: Scene4DResult) -> dict:
            return {viewer4d: viewer_html(scene_view(result.viewer, result.cameras, result.times), file_url),
                    orbit4d: str(result.orbit), timelapse4d: str(result.timelapse),
                    scene4d_files: [str(p) for p in result.downloads], metrics4d: metrics_table(result.metrics)}

        shows = {VideoResult: video_shown, SceneResult: scene_shown, Scene4DResult: scene4d_shown}

        def asked_shown(asked: Asked | None) -> dict:
            """The photo and form a job was asked with, back in the photo box and the form (nothing for None)."""
            return {} if asked is None else {image: str(asked.photo), **{form[n]: getattr(asked.form, n) for n in FORM_FIELDS}}

        def history_shown(session: str) -> dict:
            entries = app.history(session)
            return {history: gr.Dropdown(choices=entries, value=None), shown: [name for _, name in entries]}

        submitted = shown_in(notice, {job: None})  # a refused job: the page waits for nothing

        @submitted
        def on_generate(data: dict, request: gr.Request):
            form_values = VideoForm(**{name: data[form[name]] for name in FORM_FIELDS})
            return {job: app.submit_generate(session_of(request), data[image], form_values).id}

        @submitted
        def on_build(generated, uploaded, steps, request: gr.Request):
            return {job: app.submit_scene(session_of(request), uploaded or generated, int(steps) if steps else None).id}

        @submitted
        def on_build4d(data: dict, request: gr.Request):
            form_values = VideoForm(**{name: data[form[name]] for name in FORM_FIELDS})
            return {job: app.submit_scene4d(session_of(request), data[image], form_values).id}

        def waiting(kind: str) -> Callable:
            """The page's wait for its job of ``kind``: its place and ETA while it waits, its progress while it runs,
            then its result. A page that goes away drops only this wait; the job runs on (a reloaded page waits again)."""

            @in_page
            def on_wait(job_id: str | None, request: gr.Request, progress=gr.Progress()):
                session = session_of(request)
                waited = app.jobs.find(session, job_id)
                if waited is None or waited.what != kind:  # nothing of this kind to wait for: the notice stays as it is
                    return {notice: gr.skip()}  # (on_open's news of a failed job was cleared by the waits after it)
                while not waited.finished.wait(PROGRESS_SECONDS):
                    show_progress(progress, app.jobs.status(waited))
                if waited.error is not None:
                    app.jobs.untold(session)  # told here: a page that opens later does not tell it again
                    raise DimensionXError(ended(waited))
                return {**shows[type(waited.result)](waited.result), **history_shown(session)}

            return on_wait

        @in_page
        def on_settings(sidecar):
            loaded = app.load_settings(sidecar)
            return {form[name]: getattr(loaded, name) for name in FORM_FIELDS}

        @in_page
        def on_photo(path):
            if path:
                check_image_upload(path, app.config.max_upload_mb, app.config.max_image_megapixels)
            return {}

        @in_page
        def on_clip(path):
            if path:
                check_scene_video(path, app.config.max_upload_mb)
            return {}

        def emptied_if_refused(message: str):
            return None if message else gr.skip()  # a refused upload leaves its box empty

        @in_page
        def on_history(name, request: gr.Request):
            if not name:
                return {}
            result = app.result(session_of(request), name)
            return {**shows[type(result)](result), **asked_shown(asked_of(result))}  # its photo and form: tweak, run again

        @in_page
        def on_open(request: gr.Request):
            """A page load: the session's newest results, the photo and form of its newest job, its history."""
            app.sessions.sweep()  # expired sessions go even when no job runs
            session = session_of(request)
            updates = history_shown(session)
            for result in app.latest(session).values():
                updates.update(shows[type(result)](result))
            updates.update(asked_shown(app.restored(session)))
            current = app.jobs.current(session)  # a job the page before a reload waited for: this page waits for it
            failed = app.jobs.untold(session)  # a job that failed or was cancelled while no page waited for it
            return {**updates, running: running_line(session), notice: in_words(ended(failed)) if failed else "",
                    job: current.id if current else None}

        def on_poll(known: list[str], request: gr.Request):
            """Every few seconds: a running job's progress, and results that arrived without this page's asking."""
            session = session_of(request)
            names = [name for _, name in app.history(session)]
            updates = {running: running_line(session)}
            failed = app.jobs.untold(session)
            if failed:
                updates[notice] = in_words(ended(failed))
            if names == known:
                return updates
            updates.update(history_shown(session))
            for name in names[:len(names) - len(known)]:  # the new ones, newest first: each kind's newest wins
                result = app.result(session, name)
                updates = {**shows[type(result)](result), **updates}
            return updates

        def running_line(session: str) -> str:
            status = app.jobs.active(session)  # e.g. of a page before a reload
            return f"{status.what} is {status.line()}. Its result appears here when it is done." if status else ""

        def on_pick(evt: gr.SelectData):
            return names[evt.index]

        def on_motion(name):
            card = next((c for c in cards if c.name == name), None)
            return about(card) if card else "The base model, no director: the camera moves as the prompt suggests."

        def on_cancel(request: gr.Request):
            session = session_of(request)
            cancelled = app.jobs.current(session)
            if cancelled is None or not app.jobs.cancel(session, timeout=STOP_SECONDS):
                return "Nothing of this page is running."
            if not cancelled.finished.is_set():
                return "Cancelling: the job stops at its next step."
            if cancelled.error is None:
                return f"{cancelled.what} had finished before Cancel: its result is shown."
            app.jobs.untold(session)  # told here (the waiting page may tell it first, in the same words), not again later
            return in_words(ended(cancelled))

        video_outputs = {video, video_files, summary, last_video, upload, history, shown, notice}
        scene_outputs = {viewer, scene_files, metrics, orbit, history, shown, notice}
        scene4d_outputs = {viewer4d, orbit4d, timelapse4d, scene4d_files, metrics4d, history, shown, notice}
        everything = video_outputs | scene_outputs | scene4d_outputs | {image, running, *form_inputs}
        waits = {"concurrency_limit": None, "show_progress": "full"}  # every page waits at once; the jobs queue in app.jobs
        kinds = ((GENERATE, generate, {image, *form_inputs}, video_outputs, on_generate, "generate"),
                 (BUILD, build, [last_video, upload, iterations], scene_outputs, on_build, "build"),
                 (BUILD4D, build4d, {image, *form_inputs}, scene4d_outputs, on_build4d, "build4d"))
        for kind, button, inputs, outputs, submit, name in kinds:
            button.click(submit, inputs, {job, notice}, queue=False, api_name=f"on_{name}").then(
                waiting(kind), job, outputs, api_name=f"wait_{name}", **waits)
        cancel.click(on_cancel, None, notice, queue=False, show_progress="hidden")
        gallery.select(on_pick, None, form["motion"], queue=False)
        form["motion"].change(on_motion, form["motion"], director, queue=False)
        settings.upload(on_settings, settings, {*form_inputs, notice}, queue=False)
        image.upload(on_photo, image, {notice}, queue=False).then(emptied_if_refused, notice, image, queue=False)
        upload.upload(on_clip, upload, {notice}, queue=False).then(emptied_if_refused, notice, upload, queue=False)
        quiet = {"queue": False, "show_progress": "hidden"}  # leaves a running job's progress bars alone
        history.select(on_history, history, everything, **quiet)
        opened = demo.load(on_open, None, everything | {job}, api_name="on_open", **quiet)
        for kind, _, _, outputs, _, name in kinds:  # the reloaded page's bar for the session's job, of whichever kind
            opened = opened.then(waiting(kind), job, outputs, api_name=f"rewait_{name}", **waits)
        timer.tick(on_poll, shown, everything - {image, *form_inputs}, api_name="on_poll", **quiet)
    return demo


def launch(app: App, block: bool = True) -> gr.Blocks:
    """Serves the page on ``app.config.host:port``: files from the session root (each to its own session only),
    the viewer's static files and Gradio's cache."""
    config = app.config
    demo = build_ui(app)
    demo.queue(default_concurrency_limit=1, max_size=config.max_queue)
    head = f'<script type="module" src="{file_url(STATIC / "viewer.js")}"></script>'
    guard = Middleware(SessionFiles, root=app.sessions.root, public=(PREVIEWS,), max_age_seconds=int(app.sessions.ttl_seconds))
    demo.launch(server_name=config.host, server_port=config.port or None, max_file_size=int(config.max_upload_mb * 1e6),
                allowed_paths=[str(app.sessions.root), str(STATIC)], show_error=True, prevent_thread_lock=True,
                quiet=not block, head=head, css=CSS, app_kwargs={"middleware": [guard]})
    if block:
        wait_until_interrupted(app, demo)
    return demo


def wait_until_interrupted(app: App, demo: gr.Blocks) -> None:
    """Serves until Ctrl-C or SIGTERM (``interrupts.Interrupted``), then stops the running job at its next step (its
    folder is removed), closes the server and lets the CLI exit 130 or 143."""
    import time

    from ..interrupts import reinstall_signals

    try:
        while True:
            reinstall_signals()  # after the imports of Gradio, torch and (in a job) pycolmap, whose glog takes SIGTERM
            time.sleep(0.5)
    finally:
        app.jobs.cancel_all(timeout=STOP_SECONDS)
        demo.close()
