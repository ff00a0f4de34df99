"""The app's callbacks on the tiny model (generate, reproduce, build scene, errors) and its safety rules."""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import os
import signal
import stat
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from dimensionx.app.access import COOKIE, folder_name
from dimensionx.app.callbacks import ASKED, App, Asked, VideoForm, form_from_config
from dimensionx.app.config import AppConfig
from dimensionx.app.jobs import CANCELLED, Bar, JobCancelled, Jobs
from dimensionx.app.sessions import ROOT_MARKER, SESSION_MARKER, Sessions
from dimensionx.cli import build_parser, main
from dimensionx.errors import DimensionXError
from dimensionx.videofiles import read_frames, write_video
from app_server import TINY_RECON, TINY_VIDEO
from recon_synthetic import arc_cameras, intrinsics, transforms_json, write_orbit_video

ROOT = Path(__file__).resolve().parents[1]
SESSION = "session-a1"
FORM = VideoForm(prompt="a barn", motion="orbit_left", seed=7, steps=2, frames=9)


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_cache) -> App:
    folder = tmp_path_factory.mktemp("app")
    (folder / "video.yaml").write_text(TINY_VIDEO)
    (folder / "recon.yaml").write_text(TINY_RECON)
    return App(AppConfig(model="tiny", device="cpu", share_dir=str(folder / "share"), max_upload_mb=2,
                         max_image_megapixels=1.0, video_config=str(folder / "video.yaml"),
                         recon_config=str(folder / "recon.yaml")))


@pytest.fixture(scope="module")
def generated(app, tmp_path_factory):
    photo = tmp_path_factory.mktemp("photo") / "photo.png"
    y, x = np.mgrid[0:100, 0:150]
    Image.fromarray(np.stack([x * 255 // 150, y * 255 // 100, (x + y) % 256], -1).astype(np.uint8)).save(photo)
    return photo, app.generate(SESSION, photo, FORM)


def test_generate_writes_the_same_video_as_the_cli_into_the_session_folder(app, generated, tmp_path):
    photo, result = generated
    assert result.video == app.sessions.root / SESSION / "video-001" / "video.mp4"
    sidecar = json.loads(result.sidecar.read_text())["config"]
    assert (sidecar["motion"], sidecar["seed"], sidecar["steps"], sidecar["frames"], sidecar["prompt"]) == ("orbit_left", 7, 2, 9, "a barn")

    cli_video = tmp_path / "cli.mp4"
    assert main(["video", str(photo), "--model", "tiny", "--device", "cpu", "--motion", "orbit_left", "--prompt", "a barn",
                 "--seed", "7", "--steps", "2", "--frames", "9", "--out", str(cli_video)]) == 0
    app_frames, cli_frames = read_frames(result.video)[0], read_frames(cli_video)[0]
    assert app_frames.shape == cli_frames.shape and app_frames.shape[0] == 9
    assert np.abs(app_frames.astype(int) - cli_frames.astype(int)).max() <= 2  # same video (H.264 rounding aside)


def test_second_video_reuses_the_loaded_model_with_other_directors(app, generated):
    photo, first = generated
    loaded = app._generator
    mixed = app.generate(SESSION, photo, VideoForm(motion="orbit_left", mix_with="z_zoom_in", mix_weight=0.7, seed=7, steps=2, frames=9))
    assert app._generator is loaded  # the weights loaded once
    assert mixed.video.parent.name == "video-002"
    directors = json.loads(mixed.sidecar.read_text())["directors"]
    assert [(d["name"], d["weight"]) for d in directors] == [("orbit_left", 0.7), ("z_zoom_in", pytest.approx(0.3))]
    assert not np.array_equal(read_frames(mixed.video)[0], read_frames(first.video)[0])


def test_reproduce_loads_a_sidecar_back_into_the_form(app, generated):
    _, result = generated
    assert app.load_settings(result.sidecar) == VideoForm(prompt="a barn", motion="orbit_left", seed=7, steps=2, frames=9)
    with pytest.raises(DimensionXError, match="not a settings sidecar"):
        app.load_settings(result.video)
    unrelated = result.sidecar.parent.parent / "unrelated.json"
    for text in ('{"name": "my project"}', "[1, 2", json.dumps({"config": {"video": "a.mp4"}, "directors": []})):
        unrelated.write_text(text)
        with pytest.raises(DimensionXError, match="unrelated.json (is not a video's settings|holds settings of another kind)"):
            app.load_settings(unrelated)
    unrelated.unlink()


def test_switch_once_from_the_form_is_the_cli_video_and_reloads(app, generated, tmp_path):
    photo, _ = generated
    form = VideoForm(prompt="a barn", motion="orbit_left", then="time", switch_step=1, seed=7, steps=2, frames=9)
    result = app.generate(SESSION, photo, form)
    cli_video = tmp_path / "cli.mp4"
    assert main(["video", str(photo), "--model", "tiny", "--device", "cpu", "--motion", "orbit_left", "--then", "time",
                 "--switch-step", "1", "--prompt", "a barn", "--seed", "7", "--steps", "2", "--frames", "9",
                 "--out", str(cli_video)]) == 0
    diff = np.abs(read_frames(result.video)[0].astype(int) - read_frames(cli_video)[0].astype(int))
    assert diff.max() <= 2  # the same Switch-Once video (H.264 rounding aside)
    assert app.load_settings(result.sidecar) == form


def test_build_4d_scene_with_a_frame_per_time_for_the_viewer(tiny_cache, tmp_path):
    cameras = tmp_path / "transforms.json"  # the tiny model's noise defeats SfM: known cameras, as the 4D CLI tests
    cameras.write_text(json.dumps(transforms_json(arc_cameras(9, 40.0), intrinsics(96, 64), 96, 64)))
    fourd = tmp_path / "fourd.yaml"
    fourd.write_text((ROOT / "configs" / "fourd_tiny.yaml").read_text() + f"cameras: {cameras}\n")
    app4d = App(AppConfig(model="tiny", device="cpu", share_dir=str(tmp_path / "share"), fourd_config=str(fourd)))
    photo = tmp_path / "photo.png"
    y, x = np.mgrid[0:64, 0:96]
    Image.fromarray(np.stack([x * 2, y * 3, (x + y) % 256], -1).astype(np.uint8)).save(photo)

    result = app4d.build_scene4d(SESSION, photo, VideoForm(prompt="a flag", seed=5, mode="exact"))
    folder = app4d.sessions.root / SESSION / result.name
    settings = json.loads((folder / "scene4d.json").read_text())["config"]
    assert (settings["prompt"], settings["seed"], settings["mode"], settings["views"]) == ("a flag", 5, "exact", 9)
    assert all(p.is_file() for p in (result.orbit, result.timelapse, *result.downloads))
    assert len(result.metrics["psnr_per_time"]) == 9 and len(result.metrics["psnr_per_holdout_view"]) == 1

    # the viewer's frames: the scene at 9 times, each the canonical Gaussians moved by the field (export_4d's PLY per time)
    assert result.times == pytest.approx(np.linspace(0, 1, 9).tolist()) and len(result.viewer) == 9
    from dimensionx.app.viewer import SPLAT_RECORD
    from dimensionx.fourd.export import export_4d
    from dimensionx.splats.export import read_ply

    plys = export_4d(folder / "scene4d", tmp_path / "export", 9)
    for frame, ply in zip(result.viewer, plys):
        positions = np.fromfile(frame, dtype=SPLAT_RECORD)["position"]  # sorted by size x opacity in the .splat
        expected = read_ply(ply)["means"].numpy()
        np.testing.assert_allclose(np.sort(positions, axis=0), np.sort(expected, axis=0), atol=1e-5)
    assert result.asked == Asked(folder / "photo.png", VideoForm(prompt="a flag", seed=5, mode="exact"))  # kept for a reload
    assert result.asked.photo.read_bytes() == photo.read_bytes()
    assert app4d.result(SESSION, result.name) == result  # recorded: a reloaded page shows it again, with its photo and form


def test_form_mixes_two_directors_into_one_motion():
    form = VideoForm(motion="orbit_left", mix_with="z_zoom_in", mix_weight=0.75)
    assert form.motion_spec() == "orbit_left:0.75,z_zoom_in:0.25"
    assert VideoForm(motion="pan_up", mix_with="none", mix_weight=0.3).motion_spec() == "pan_up"
    from dimensionx.video.config import VideoConfig

    assert form_from_config(VideoConfig(motion="orbit_left:0.75,z_zoom_in:0.25")).mix_weight == 0.75


def test_build_scene_reconstructs_an_uploaded_clip(app, tmp_path):
    clip = tmp_path / "clip.mp4"
    write_orbit_video(clip)
    scene = app.build_scene(SESSION, clip)
    assert scene.folder.parent == app.sessions.root / SESSION and scene.folder.name.startswith("scene-")
    assert scene.metrics["frames_registered"] == 16 and scene.metrics["iterations"] == 10 and scene.metrics["psnr"] > 10
    assert scene.viewer == scene.folder / "scene.splat" and scene.viewer.stat().st_size == 32 * scene.metrics["n_gaussians"]
    assert [p.name for p in scene.downloads] == ["point_cloud.ply", "scene.splat", "transforms.json", "metrics.json"]
    assert all(p.is_file() for p in scene.downloads) and read_frames(scene.orbit)[0].shape[0] == 6


def test_the_viewer_starts_at_the_first_camera_looking_at_the_median_splat(tmp_path):
    from dimensionx.app.viewer import SPLAT_RECORD, scene_view, viewer_html

    records = np.zeros(5, dtype=SPLAT_RECORD)
    records["position"] = [[10, 0, 0], [12, 1, 0], [14, 2, 5], [16, 3, 0], [110, 4, 0]]  # median (14, 2, 0); a floater
    records.tofile(tmp_path / "scene.splat")
    cameras = arc_cameras(9, 40.0)  # [9, 4, 4] world-to-camera
    (tmp_path / "transforms.json").write_text(json.dumps(transforms_json(cameras, intrinsics(96, 64), 96, 64)))
    view = scene_view([tmp_path / "scene.splat"], tmp_path / "transforms.json")
    np.testing.assert_allclose(view.position, np.linalg.inv(cameras[0])[:3, 3], atol=1e-9)  # the first camera's centre
    assert view.target == [14, 2, 0] and view.times == []
    html = viewer_html(view, lambda p: f"/files/{p.name}")
    scene = json.loads(html.split('data-scene="')[1].split('"')[0].replace("&quot;", '"'))
    assert scene["files"] == ["/files/scene.splat"] and scene["target"] == [14, 2, 0]


def crash():
    raise ZeroDivisionError("boom")


def test_build_3d_of_a_tiny_video_uses_the_known_cameras_beside_it(app, generated, tmp_path):
    import shutil

    _, result = generated
    shown = tmp_path / "gradio-cache" / "video.mp4"  # the page's video box holds Gradio's copy, without the sidecar
    shown.parent.mkdir()
    shutil.copyfile(result.video, shown)
    scene = app.build_scene(SESSION, shown, 20)  # noise, which SfM cannot register: the original's motion's cameras
    metrics = json.loads((scene.folder / "metrics.json").read_text())
    assert metrics["config"]["cameras"] == str(result.video.with_suffix(".transforms.json"))
    assert metrics["models_found"] is None and metrics["frames_registered"] == 9
    assert scene.viewer.is_file() and (scene.folder / "point_cloud.ply").is_file()


def test_errors_name_the_problem_in_the_page_words_and_the_app_keeps_working(app, generated, tmp_path):
    import gradio as gr

    from dimensionx.app.ui import shown_in

    _, result = generated
    notice = gr.Markdown(render=False)
    build = shown_in(notice)(lambda *args: {"scene": app.build_scene(*args)})
    scenes = sorted((app.sessions.root / SESSION).glob("scene-*"))
    noise = tmp_path / "noise.mp4"  # an upload of noise (not a copy of the session's video): no known cameras
    write_video(read_frames(result.video)[0][::-1], noise, 8)
    assert "structure from motion registered only" in build(SESSION, noise)[notice]
    assert sorted((app.sessions.root / SESSION).glob("scene-*")) == scenes  # the failed job left no folder
    assert build(SESSION, None) == {notice: "⚠ no video to reconstruct: press Generate first, or upload a video"}
    fake = tmp_path / "clip.mp4"
    fake.write_text("a text file renamed .mp4")
    assert build(SESSION, fake) == {notice: "⚠ the uploaded file clip.mp4 is not a video that can be played (no frame of it "
                                            "decodes): upload a video (.mp4, .mov, .mkv, .avi, .webm, .gif)"}
    assert shown_in(notice)(crash)() == {
        notice: "⚠ the job failed (ZeroDivisionError); the app keeps serving, and its log has the details"}
    generate = shown_in(notice)(lambda form: {"video": app.generate(SESSION, generated[0], form)})
    assert "unknown motion 'orbit_sideways'" in generate(VideoForm(motion="orbit_sideways", steps=2, frames=9))[notice]
    frames = generate(VideoForm(steps=2, frames=10))[notice]
    assert "4k+1" in frames and "*Frames*" in frames and "--" not in frames  # the page's field, not the CLI's flag
    from dimensionx.app.ui import for_the_page

    assert for_the_page(f"input image {app.sessions.root}/{SESSION}/video-001/photo.png cannot be read") == \
        "input image photo.png cannot be read"


# ---- safety


def test_the_app_binds_to_loopback_unless_told_and_warns_when_told(caplog):
    from dimensionx.app.cli import check_host
    from dimensionx.config import config_from_args

    def parsed(*flags):
        return config_from_args(AppConfig, build_parser().parse_args(["app", *flags]))

    assert parsed().host == "127.0.0.1" and parsed("--port", "8080").host == "127.0.0.1"
    with caplog.at_level(logging.WARNING):
        check_host(parsed())
        assert not caplog.records
        check_host(parsed("--host", "0.0.0.0"))
    assert "serves the app to every machine" in caplog.text
    for host in ("999.1.1.1", "no-such-host.invalid", "192.0.2.1"):  # not an IP, a name that does not resolve, TEST-NET-1
        with pytest.raises(DimensionXError, match=rf"^--host {host} is not an address of this machine \(.+\): use 127\.0\.0\.1"):
            check_host(parsed("--host", host))


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("#!/bin/sh\necho not a photo\n"), "is not an image"),
    (lambda p: Image.new("RGB", (1500, 1000)).save(p), "1500x1000 px"),  # 1.5 MP over the 1 MP limit, 8 kB of PNG
    (lambda p: p.write_bytes(os.urandom(3_000_000)), "the limit is 2 MB"),
])
def test_uploads_are_checked_before_any_model_runs(tmp_path, tiny_cache, make, message):
    app = App(AppConfig(model="tiny", device="cpu", share_dir=str(tmp_path / "share"), max_upload_mb=2, max_image_megapixels=1.0))
    upload = tmp_path / "upload.png"
    make(upload)
    with pytest.raises(DimensionXError, match=message):
        app.generate(SESSION, upload, FORM)
    assert app._generator is None and not (app.sessions.root / SESSION).exists()
    with pytest.raises(DimensionXError, match="is not a video"):
        app.build_scene(SESSION, upload)


def test_session_folders_expire_and_stay_closed(tmp_path):
    sessions = Sessions(tmp_path / "share", ttl_seconds=600)
    old, new = sessions.folder("old-session"), sessions.folder("new-session")
    assert stat.S_IMODE(old.stat().st_mode) == 0o700  # the server's user only
    os.utime(old / SESSION_MARKER, (time.time() - 601, time.time() - 601))
    assert sessions.sweep() == [old] and not old.exists() and new.is_dir()
    assert sessions.resolve("new-session", "video-001/video.mp4") == new / "video-001" / "video.mp4"
    (tmp_path / "share" / "other-session").mkdir()
    for escape in ("../other-session/x.mp4", "/etc/passwd", "video/../../other-session"):
        with pytest.raises(DimensionXError, match="outside this session's folder"):
            sessions.resolve("new-session", escape)
    with pytest.raises(DimensionXError, match="not a plain name"):
        sessions.folder("../new-session")
    with pytest.raises(DimensionXError, match="is not one of this app's sessions"):
        sessions.folder("other-session")  # a folder the app did not make is never written into


def test_a_share_dir_holding_other_files_is_refused_at_start(tmp_path):
    import subprocess
    import sys

    share = tmp_path / "projects"
    (share / "old_project").mkdir(parents=True)
    (share / "old_project" / "canary.txt").write_text("a user's work")
    done = subprocess.run([sys.executable, "-m", "dimensionx.cli", "app", "--model", "tiny", "--device", "cpu",
                           "--port", "0", "--share-dir", str(share)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"dimensionx app: error: --share-dir {share} already holds files the app did not make, and the app deletes "
        "expired sessions there: pass a new or empty folder (e.g. a subfolder of it)"]
    assert (share / "old_project" / "canary.txt").read_text() == "a user's work" and not (share / ROOT_MARKER).exists()


def test_the_sweep_removes_only_the_apps_expired_sessions(tmp_path):
    share, outside = tmp_path / "share", tmp_path / "outside"
    share.mkdir()  # an existing, empty folder is adopted
    app = App(AppConfig(model="tiny", device="cpu", share_dir=str(share), session_ttl_minutes=10))
    expired = app.sessions.folder("expired-session")
    (expired / "video-001").mkdir()
    decoy = share / "old_project"  # put there by a user after the app started, as old as the expired session
    (decoy / "src").mkdir(parents=True)
    (decoy / "src" / "canary.txt").write_text("a user's work")
    (decoy / SESSION_MARKER.upper()).write_text("")  # a look-alike name is no marker
    outside.mkdir()
    (outside / SESSION_MARKER).touch()
    (outside / "canary.txt").write_text("reached through a link")
    (share / "linked-session").symlink_to(outside, target_is_directory=True)
    long_ago = time.time() - 3600
    for path in (expired / SESSION_MARKER, decoy, decoy / "src", outside / SESSION_MARKER, outside):
        os.utime(path, (long_ago, long_ago))

    with pytest.raises(DimensionXError, match="no image"):  # any job sweeps first, as the page's load does
        app.generate("another-session", None, FORM)

    assert not expired.exists()
    assert (decoy / "src" / "canary.txt").read_text() == "a user's work"
    assert (outside / "canary.txt").is_file() and (share / "linked-session").is_symlink()
    restarted = App(AppConfig(model="tiny", device="cpu", share_dir=str(share)))  # the app's own root is reused
    assert restarted.sessions.root == share.resolve()


class Clock:
    """The queue's clock, moved by the fake jobs: measured times are exact."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_generate(jobs: Jobs, clock: Clock, steps: int, ran: list, name: str, hold: dict | None = None, frames: int = 0):
    """A Generate as the worker sees it: 2 s preparing, ``steps`` denoising steps of 1 s, then ``frames`` frames decoded
    under their own bar at 0.5 s each, 3 s decoding and writing; ``hold``: {step: event} pauses there until the test
    sets the event (a step of -1: in decoding)."""
    hold = hold or {}

    def pause(at):
        if at in hold:
            hold[at][0].set()
            assert hold[at][1].wait(10)

    def run():
        ran.append(name)
        clock.now += 2
        jobs.progress(Bar(1, 0, steps))
        for step in range(1, steps + 1):
            clock.now += 1
            jobs.check()
            jobs.progress(Bar(1, step, steps))
            pause(step)
        if frames:
            jobs.progress(Bar(2, 0, frames))
            for frame in range(1, frames + 1):
                clock.now += 0.5
                jobs.progress(Bar(2, frame, frames))
        jobs.progress(None)
        clock.now += 1
        pause(-1)
        clock.now += 2
        return name

    return run


def held(*steps) -> dict:
    return {step: (threading.Event(), threading.Event()) for step in steps}


def test_queued_jobs_run_first_in_first_out_one_at_a_time():
    clock, ran = Clock(), []
    jobs = Jobs(clock=clock)
    hold = held(1)
    first = jobs.submit("a", "Generate", fake_generate(jobs, clock, 4, ran, "a", hold), 4)
    assert hold[1][0].wait(10)  # a runs; the others queue behind it
    queued = [jobs.submit(s, "Generate", fake_generate(jobs, clock, 4, ran, s), 4) for s in ("b", "c", "d")]
    assert [j.state for j in queued] == ["waiting"] * 3 and ran == ["a"]
    hold[1][1].set()
    for job in (first, *queued):
        assert job.finished.wait(10) and job.state == "done"
    assert ran == ["a", "b", "c", "d"] and [j.result for j in queued] == ["b", "c", "d"]
    blocked = held(1)
    jobs.submit("e", "Generate", fake_generate(jobs, clock, 2, ran, "e", blocked), 2)
    assert blocked[1][0].wait(10)
    jobs.submit("f", "Generate", fake_generate(jobs, clock, 2, ran, "f"), 2)
    with pytest.raises(DimensionXError, match="Generate of this browser is still waiting: wait for its result, or press Cancel"):
        jobs.submit("f", "Generate", fake_generate(jobs, clock, 2, ran, "f"), 2)  # a second job of one session
    jobs.max_waiting = 1
    with pytest.raises(DimensionXError, match=r"the queue is full \(1 jobs wait for the accelerator\): try again"):
        jobs.submit("g", "Generate", fake_generate(jobs, clock, 2, ran, "g"), 2)
    blocked[1][1].set()


def test_waiting_jobs_show_their_place_and_an_eta_from_measured_step_times():
    clock, ran = Clock(), []
    jobs = Jobs(clock=clock)
    measured = jobs.submit("a", "Generate", fake_generate(jobs, clock, 10, ran, "a"), 10)  # 2 + 10 x 1 + 3 = 15 s
    assert measured.finished.wait(10)
    hold = held(5, -1)
    running = jobs.submit("b", "Generate", fake_generate(jobs, clock, 20, ran, "b", hold), 20,
                          ("preparing", "decoding and writing the video"))
    assert hold[5][0].wait(10)
    second = jobs.submit("c", "Generate", fake_generate(jobs, clock, 10, ran, "c"), 10)
    third = jobs.submit("d", "Generate", fake_generate(jobs, clock, 30, ran, "d"), 30)
    # b: 15 steps left at its own 1 s a step, then 3 s decoding and writing as measured = 18 s
    assert jobs.status(running).line() == "running: step 5/20, about 18 s left"
    assert jobs.active("b").line() == "running: step 5/20, about 18 s left"
    assert jobs.status(second).line() == "waiting: place 1 of 2, about 33 s"  # 18 + 2 + 10 + 3
    assert jobs.status(third).line() == "waiting: place 2 of 2, about 68 s"  # 33 + 2 + 30 + 3
    assert jobs.status(third).fraction == 0.0  # queued just now: none of its wait has gone by
    hold[5][1].set()
    assert hold[-1][0].wait(10)  # 1 s into decoding and writing, measured at 3 s
    status = jobs.status(running)
    assert status.line() == "running: decoding and writing the video, about 2 s left" and status.fraction == pytest.approx(1 / 3)
    hold[-1][1].set()
    assert third.finished.wait(10) and ran == ["a", "b", "c", "d"]


def test_only_the_denoising_bar_of_a_measured_job_scales_with_the_steps():
    """A bar of frames (decoding) takes as long at 40 steps as at 10: only the bar of as many steps as the measured
    job had scales with the next job's steps."""
    clock, ran = Clock(), []
    jobs = Jobs(clock=clock)
    measured = jobs.submit("a", "Generate", fake_generate(jobs, clock, 10, ran, "a", frames=8), 10)  # 2 + 10 + 4 + 3 s
    assert measured.finished.wait(10)
    hold = held(1)
    blocker = jobs.submit("b", "Generate", fake_generate(jobs, clock, 10, ran, "b", hold), 10)
    assert hold[1][0].wait(10)
    waiting = jobs.submit("c", "Generate", fake_generate(jobs, clock, 40, ran, "c", frames=8), 40)
    # b: 9 steps left at 1 s, then its frames and the rest as measured (4 + 3 s) = 16 s; c: 2 + 40 + 4 + 3 = 49 s
    assert jobs.status(waiting).line() == "waiting: place 1 of 1, about 65 s"
    hold[1][1].set()
    assert waiting.finished.wait(10) and blocker.state == "done"


def test_a_job_of_a_kind_never_measured_says_its_time_is_unknown():
    clock, ran = Clock(), []
    jobs = Jobs(clock=clock)
    hold = held(1)
    jobs.submit("a", "Generate", fake_generate(jobs, clock, 4, ran, "a", hold), 4)
    assert hold[1][0].wait(10)
    waiting = jobs.submit("b", "Build 3D scene", fake_generate(jobs, clock, 4, ran, "b"))
    assert jobs.status(waiting).line() == "waiting: place 1 of 1, time unknown until a first Build 3D scene has run"
    hold[1][1].set()
    assert waiting.finished.wait(10)
    # Generate is measured now; a Build 4D scene never was: its bar's pace says nothing of its later stages, so it
    # shows that bar's time only, and a Generate behind it does not pretend to know when it starts
    hold = held(1)
    new_kind = jobs.submit("c", "Build 4D scene", fake_generate(jobs, clock, 4, ran, "c", hold))
    assert hold[1][0].wait(10)
    behind = jobs.submit("d", "Generate", fake_generate(jobs, clock, 4, ran, "d"), 4)
    assert jobs.status(new_kind).line() == "running: step 1/4, about 3 s left in this stage"
    assert jobs.status(behind).line() == "waiting: place 1 of 1, time unknown until a first Build 4D scene has run"
    hold[1][1].set()
    assert behind.finished.wait(10) and ran == ["a", "b", "c", "d"]


def test_cancel_removes_the_sessions_waiting_job_and_stops_its_running_one():
    clock, ran = Clock(), []
    jobs = Jobs(clock=clock)
    assert jobs.cancel("a") is False  # nothing to cancel
    hold = held(2)
    running = jobs.submit("a", "Generate", fake_generate(jobs, clock, 1000, ran, "a", hold), 1000)
    assert hold[2][0].wait(10)
    removed = jobs.submit("b", "Generate", fake_generate(jobs, clock, 4, ran, "b"), 4)
    kept = jobs.submit("c", "Generate", fake_generate(jobs, clock, 4, ran, "c"), 4)
    assert jobs.cancel("b") is True
    assert removed.finished.is_set() and removed.state == "cancelled" and str(removed.error) == CANCELLED
    assert jobs.active("b") is None and jobs.status(kept).line().startswith("waiting: place 1 of 1")
    hold[2][1].set()
    assert jobs.cancel("a", timeout=10) is True  # stops at its next step
    assert running.state == "cancelled" and isinstance(running.error, JobCancelled)
    assert kept.finished.wait(10) and kept.state == "done"
    assert ran == ["a", "c"]  # b never ran
    again = jobs.submit("b", "Generate", fake_generate(jobs, clock, 2, ran, "b"), 2)  # the session may start afresh
    assert again.finished.wait(10) and again.state == "done"


def test_a_job_that_finishes_with_no_page_open_is_in_the_sessions_history(app, generated):
    photo, _ = generated
    session = "session-nopage"
    job = app.submit_generate(session, photo, FORM)  # no page waits for it
    assert job.finished.wait(300) and job.state == "done", job.error
    assert [name for _, name in app.history(session)] == ["video-001"]
    assert app.result(session, "video-001").video == job.result.video and job.result.video.is_file()


def test_a_generate_reports_each_stage_through_the_queue(app, generated):
    import functools

    from dimensionx.app.ui import tracking

    app.jobs.track = functools.partial(tracking, app.jobs)  # as the page sets it: the worker's tqdm bars report
    job = app.submit_generate("session-stages", generated[0], dataclasses.replace(FORM, steps=3))
    assert job.finished.wait(300) and job.state == "done", job.error
    # preparing, the 3 denoising steps, then decoding and writing: each measured, for the next job's ETA
    assert [piece.length for piece in job.pieces] == [None, 3, None] and all(piece.seconds > 0 for piece in job.pieces)


def test_a_cancelled_waiting_job_leaves_no_files(app, generated):
    photo, _ = generated
    hold = threading.Event()
    blocker = app.jobs.submit("session-busy", "Generate", lambda: hold.wait(30))
    waiting = app.submit_generate("session-waits", photo, FORM)
    assert app.jobs.cancel("session-waits") and waiting.state == "cancelled"
    hold.set()
    assert blocker.finished.wait(30)
    assert not list((app.sessions.root / "session-waits").glob("video-*"))
    asked = app.restored("session-waits")  # a reloaded page gets its photo and form back, to press Generate again
    assert asked.form == FORM and asked.photo.read_bytes() == photo.read_bytes()


def test_a_reload_after_a_failed_job_gives_back_its_photo_and_form_not_an_earlier_ones(app, generated, tmp_path):
    photo, _ = generated
    other = tmp_path / "other.png"  # the photo of the job that fails: not the one of the session's video
    Image.new("RGB", (96, 64), (30, 140, 200)).save(other)
    assert app.restored("session-retry") is None  # a new session: the page keeps its defaults
    done = app.submit_generate("session-retry", photo, FORM)
    assert done.finished.wait(300) and done.state == "done", done.error
    wrong = VideoForm(prompt="a barn at night", motion="z_zoom_in", seed=11, steps=3, frames=10)  # 4k+1 frames: fails in the job
    failed = app.submit_generate("session-retry", other, wrong)
    assert failed.finished.wait(300) and failed.state == "failed"
    asked = app.restored("session-retry")
    assert asked.form == wrong and asked.photo.read_bytes() == other.read_bytes()
    assert asked.photo.parent == app.sessions.root / "session-retry" / ASKED  # outside the failed job's folder, which is gone
    assert [p.name for p in (app.sessions.root / "session-retry").glob("video-*")] == ["video-001"]

    only = app.submit_generate("session-only-failed", other, wrong)  # a session whose only job failed
    assert only.finished.wait(300) and only.state == "failed"
    assert app.restored("session-only-failed") == Asked(app.sessions.root / "session-only-failed" / ASKED / asked.photo.name, wrong)


def test_a_result_recorded_before_the_asked_record_still_loads_with_its_photo_and_form(app, generated):
    photo, _ = generated
    done = app.submit_generate("session-old-record", photo, FORM)
    assert done.finished.wait(300) and done.state == "done", done.error
    record = next((app.sessions.root / "session-old-record").glob("video-*/result.json"))
    new = json.loads(record.read_text())
    old = {k: v for k, v in new.items() if k != "asked"} | {"photo": new["asked"]["photo"], "form": new["asked"]["form"]}
    record.write_text(json.dumps(old))  # the layout written until 2026-12-07: photo and form side by side
    result = app.result("session-old-record", record.parent.name)
    assert result.asked.form == FORM and result.asked.photo.read_bytes() == photo.read_bytes()
    assert app.latest("session-old-record")[type(result)].asked == result.asked  # what a reload falls back on


@pytest.fixture(scope="module")
def server(app):
    from dimensionx.app.ui import launch

    app.config.port = 0
    demo = launch(app, block=False)
    yield app, urlparse(demo.local_url)
    demo.close()


FORM_LABELS = {"prompt": "Prompt", "motion": "Director", "mix_with": "Mix with", "mix_weight": "Weight of the first director",
               "then": "Then switch to", "switch_step": "at denoising step", "seed": "Seed", "steps": "Steps",
               "guidance": "Guidance", "frames": "Frames (4k+1)", "mode": "Speed mode"}  # the form's fields as the page names them


def page(client, api_name: str, *args) -> list[tuple[str | None, object]]:
    """What an event of the page sets: (the field's label, its value) for each field it sets."""
    returns = client.view_api(print_info=False, return_format="dict")["named_endpoints"][api_name]["returns"]
    return [(r["label"], value) for r, value in zip(returns, client.predict(*args, api_name=api_name))]


def photo_and_form(shown: list[tuple[str | None, object]]) -> tuple[np.ndarray, VideoForm]:
    """The photo box's pixels [H, W, 3] and the form in what an event set."""
    fields = dict(shown)
    return np.asarray(Image.open(fields["Photo"]).convert("RGB")), VideoForm(**{f: fields[label] for f, label in FORM_LABELS.items()})


def pixels(photo: Path) -> np.ndarray:
    return np.asarray(Image.open(photo).convert("RGB"))


def get(url, path: str, cookie: str | None = None) -> int:
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("GET", path, headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else {})  # sent as written: no clean-up of ".."
    return connection.getresponse().status


def test_a_sessions_files_are_served_to_its_browser_only(server, generated, tmp_path_factory):
    app, url = server
    _, result = generated
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("GET", "/")
    cookie = connection.getresponse().getheader("set-cookie")  # a new browser gets its session cookie with the page
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    own = app.generate(folder_name(token), generated[0], FORM)  # a job of that browser's session
    assert get(url, f"/gradio_api/file={own.video}", token) == 200
    assert get(url, f"/gradio_api/file={own.video}") == 403  # no cookie
    assert get(url, f"/gradio_api/file={own.video}", "x" * 43) == 403  # another browser's cookie
    assert get(url, f"/gradio_api/file={result.video}", token) == 403  # another session's file
    assert get(url, f"/gradio_api/file={app.sessions.root}/previews/orbit_left.gif") == 200  # shared with everyone
    assert stat.S_IMODE(own.video.parent.parent.stat().st_mode) == 0o700
    assert str(app.sessions.root) not in own.sidecar.read_text()  # the sidecar offered for download names no server path

    secret = app.sessions.root.parent / "secret.txt"
    secret.write_text("not for the browser")
    inside = f"{app.sessions.root}/{folder_name(token)}"
    for path in (f"/gradio_api/file={inside}/../../secret.txt", f"/gradio_api/file={inside}/%2e%2e/%2e%2e/secret.txt",
                 f"/gradio_api/file={secret}", "/gradio_api/file=/etc/passwd", "/gradio_api/file=../../../../etc/passwd"):
        assert get(url, path, token) in (403, 404), path


def test_cancel_in_the_page_stops_a_running_video_at_its_next_step(server, generated):
    from gradio_client import Client, handle_file

    app, url = server
    client = Client(url.geturl(), verbose=False)
    form = dataclasses.replace(FORM, steps=1000)  # the most the scheduler takes: ~6 s on a CPU, the test cancels within ~0.5 s
    client.predict(handle_file(str(generated[0])), *dataclasses.astuple(form), api_name="/on_generate")  # queued
    job = client.submit(api_name="/wait_generate")  # what the page does next: wait for it, with its progress
    deadline = time.monotonic() + 120
    while not (job.status().progress_data and (job.status().progress_data[0].index or 0) >= 2):  # steps shown as they run
        assert time.monotonic() < deadline and not job.done(), "the job never reported its steps"
        time.sleep(0.2)
    assert "running: step" in job.status().progress_data[0].desc
    client.predict(api_name="/on_cancel")
    outputs = job.result(timeout=60)  # the page's fields; the notice says what happened, the results stay as they were
    assert any("the job was cancelled; nothing was written" in str(value) for value in outputs), outputs
    assert app.jobs.active(folder_name("connection:" + client.session_hash)) is None  # the next job may start
    assert not list(app.sessions.root.glob(f"{folder_name('connection:' + client.session_hash)}/video-*"))  # no partial files


def test_a_job_that_fails_with_no_page_open_is_told_once_by_the_next_page(server, generated):
    from gradio_client import Client

    app, url = server
    client = Client(url.geturl(), verbose=False)  # a browser session whose page is closed while its jobs run
    session = folder_name("connection:" + client.session_hash)

    def notices(api_name: str) -> list[str]:
        return [value for value in client.predict(api_name=api_name) if isinstance(value, str) and value.startswith("⚠")]

    wrong = dataclasses.replace(FORM, prompt="a barn at night", seed=11, frames=10)
    wrong_frames = app.submit_generate(session, generated[0], wrong)  # fails in the job
    assert wrong_frames.finished.wait(300) and wrong_frames.state == "failed"
    opened = page(client, "/on_open")  # the page opens again: the failure, once, in the page's words
    told = [value for _, value in opened if isinstance(value, str) and value.startswith("⚠")]
    photo, form = photo_and_form(opened)  # and the session's only job's photo and form, to fix Frames and press Generate again
    assert form == wrong and np.array_equal(photo, pixels(generated[0]))
    assert len(told) == 1 and told[0].startswith("⚠ Generate did not finish: ") and "4k+1" in told[0], told
    assert "*Frames*" in told[0] and "--" not in told[0] and str(app.sessions.root) not in told[0]
    assert notices("/on_open") == []  # a second reload says nothing more

    crashed = app.jobs.submit(session, "Build 3D scene", crash)  # a bug, while the page is open and polling
    assert crashed.finished.wait(30) and crashed.state == "failed"
    assert notices("/on_poll") == ["⚠ Build 3D scene did not finish: the job failed (ZeroDivisionError); the app keeps "
                                   "serving, and its log has the details"]
    assert notices("/on_poll") == [] and notices("/on_open") == []


def test_history_gives_back_an_earlier_results_photo_and_form(server, generated, tmp_path):
    from gradio_client import Client

    app, url = server
    client = Client(url.geturl(), verbose=False)
    session = folder_name("connection:" + client.session_hash)
    other = tmp_path / "other.png"
    Image.new("RGB", (96, 64), (30, 140, 200)).save(other)
    tweaked = VideoForm(prompt="a barn in snow", motion="z_zoom_in", seed=13, steps=3, frames=9)
    first, second = app.generate(session, generated[0], FORM), app.generate(session, other, tweaked)
    photo, form = photo_and_form(page(client, "/on_open"))
    assert form == tweaked and np.array_equal(photo, pixels(other))  # a reload: the newest video's
    picked = page(client, "/on_history", first.video.parent.name)  # the earlier result: its video, photo and settings
    photo, form = photo_and_form(picked)
    assert form == FORM and np.array_equal(photo, pixels(generated[0]))
    assert np.array_equal(read_frames(dict(picked)["Video"])[0], read_frames(first.video)[0])
    photo, form = photo_and_form(page(client, "/on_history", second.video.parent.name))
    assert form == tweaked and np.array_equal(photo, pixels(other))


def test_an_upload_over_the_limit_is_refused_by_the_server(server):
    _, url = server
    body = b"x" * 2_100_000  # the app's limit is 2 MB
    boundary = "dimensionxboundary"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
               f"Content-Type: image/png\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("POST", "/gradio_api/upload", payload, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert connection.getresponse().status == 413


def test_configs_app_yaml_holds_the_defaults():
    from dimensionx.config import load_config

    assert load_config(AppConfig, Path(__file__).resolve().parents[1] / "configs" / "app.yaml") == AppConfig()


def subject_mask(image: Image.Image) -> np.ndarray:
    """[H, W] bool: pixels of the preview's subject (the orange house)."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    return (rgb[..., 0] > 200) & (rgb[..., 1] > 140) & (rgb[..., 1] < 200) & (rgb[..., 2] < 100)


def test_director_previews_move_the_view_as_the_camera_moves(tmp_path):
    from dimensionx.app.previews import write_previews
    from dimensionx.directors.registry import DIRECTORS

    previews = write_previews(tmp_path)
    assert set(previews) == set(DIRECTORS)

    def frames(name) -> list[Image.Image]:
        with Image.open(previews[name]) as gif:
            assert gif.n_frames > 10 and gif.info["loop"] == 0  # animated, for ever
            return [gif.seek(i) or gif.convert("RGB") for i in range(gif.n_frames)]

    def centre_x(image) -> float:
        return np.nonzero(subject_mask(image))[1].mean()

    pan = [centre_x(f) for f in frames("pan_left")]
    assert max(pan) - pan[0] > 10 and min(pan) >= pan[0] - 0.5  # the camera turns left: the subject slides right
    slide = [centre_x(f) for f in frames("x_right")]
    assert min(slide) - slide[0] < -10 and max(slide) <= slide[0] + 0.5
    zoom = [subject_mask(f).sum() for f in frames("z_zoom_in")]
    assert max(zoom) > 2 * zoom[0]  # the camera moves in: the subject grows
    orbit = frames("orbit_left")
    assert all(abs(centre_x(f) - centre_x(orbit[0])) < 1 for f in orbit)  # the subject stays centred ...
    assert not np.array_equal(np.asarray(orbit[0]), np.asarray(orbit[len(orbit) // 2]))  # ... while the view changes


@pytest.mark.parametrize("signum, code, busy", [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, True)])
def test_the_app_ends_on_ctrl_c_and_kill_like_every_command(tmp_path, tiny_cache, signum, code, busy):
    import re
    import subprocess
    import sys

    from gradio_client import Client, handle_file

    from app_server import free_port

    log, port, share = tmp_path / "app.log", free_port(), tmp_path / "share"
    with open(log, "w") as out:  # SIGINT at its default in the child, as at a terminal
        app = subprocess.Popen([sys.executable, "-m", "dimensionx.cli", "app", "--model", "tiny", "--device", "cpu",
                                "--port", str(port), "--share-dir", str(share)], stdout=out, stderr=out,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    while not re.search(r"Running on local URL", log.read_text()):
        assert app.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)
    if busy:  # a Generate of 1000 steps (the most the scheduler takes, ~6 s on a CPU) runs when the signal comes
        photo = tmp_path / "photo.png"
        Image.new("RGB", (96, 64), (200, 120, 40)).save(photo)
        form = dataclasses.replace(FORM, steps=1000)
        Client(f"http://127.0.0.1:{port}", verbose=False).submit(handle_file(str(photo)), *dataclasses.astuple(form),
                                                                  api_name="/on_generate")
        while "step 2/1000" not in log.read_text().replace("\r", "\n") and not list(share.glob("*/video-001/photo.png")):
            assert app.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    app.send_signal(signum)
    assert app.wait(timeout=90) == code, log.read_text()
    assert log.read_text().strip().splitlines()[-1] == (
        f"dimensionx app: interrupted by {signal.Signals(signum).name}; no partial output was written")
    assert not list(share.glob("*/video-*")), "the stopped job left files"
