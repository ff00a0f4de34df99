"""End to end in a real browser: headless Chromium drives ``dimensionx app --model tiny``.

Each thing a user relies on is a browser check: a reload mid-Generate still shows the result; a
page whose Generate waits behind another session's job sees its place and an ETA, and after a
reload the waiting job still runs and its video arrives; Cancel removes a waiting job; a fake PNG, a fake video, a bad
settings file and a cancel each end in one sentence and leave the finished video in place; a Generate that fails while
the tab is closed is told once by the reopened page, which shows its photo and form; picking the first video in History
brings back its photo and form; the 3D viewer draws the scene (a screenshot of its canvas is not
near-uniform); the 4D viewer's time slider changes the picture, and a reload shows that scene with its photo and
prompt; another session's file URL is refused. Screenshots go to $DIMENSIONX_ARTIFACTS (default
test-artifacts/app/); docs/app.png is one of them.

A tiny-model step takes milliseconds: where the browser must act while a job runs (reload, Cancel, a queue), the
app runs ``slowed`` (stopped nine tenths of the time), so the job outlasts the page's action on any machine.

Limits on waits are generous for a loaded 2-core machine; ``DIMENSIONX_TEST_SLOWDOWN`` (default 1)
multiplies them all on slower ones.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_server import running_app, slowed
from dimensionx.app.ui import POLL_SECONDS
from recon_synthetic import arc_cameras, intrinsics, transforms_json, write_orbit_video

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("DIMENSIONX_ARTIFACTS") or REPO / "test-artifacts") / "app"
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
SLOWDOWN = float(os.environ.get("DIMENSIONX_TEST_SLOWDOWN", "1"))  # multiplies every wait's limit
LONG_STEPS = 400  # denoising steps of a Generate that is still running when the test reloads: ~25 s ``slowed``, ~3 s after
SCHEDULER_STEPS = 1000  # the most steps the scheduler takes
CANCELLED_STEPS = SCHEDULER_STEPS  # a Generate cancelled mid-run (with the app ``slowed``: it cannot end first)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Chromium or chromedriver not found: apt-get install chromium chromium-driver (.ci/run does)"),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app with a tiny 4D configuration (known cameras: the tiny model's grid is noise, SfM would fail)."""
    folder = tmp_path_factory.mktemp("app")
    cameras = folder / "transforms.json"
    cameras.write_text(json.dumps(transforms_json(arc_cameras(9, 40.0), intrinsics(96, 64), 96, 64)))
    fourd = folder / "fourd.yaml"
    fourd.write_text((REPO / "configs" / "fourd_tiny.yaml").read_text() + f"cameras: {cameras}\n")
    with running_app(folder, "--fourd-config", str(fourd)) as (url, log):
        yield url, folder / "share", log


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2000",
                 "--autoplay-policy=no-user-gesture-required", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def new_session(driver, url: str) -> None:
    """The page in a browser that has no session yet (its cookie gone), loaded and ready."""
    driver.delete_all_cookies()
    driver.get(url)
    wait_for(driver, "document.querySelectorAll('#directors img').length == 17", 60, "the director gallery")


def wait_for(driver, script: str, timeout: float, what: str):
    """Polls a JavaScript expression until it is truthy (``timeout`` s x ``SLOWDOWN``); fails naming ``what``
    and the page's messages."""
    from selenium.common.exceptions import JavascriptException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:  # a JavaScript error (an element not there yet, the page reloading) counts as not yet
        return WebDriverWait(driver, timeout * SLOWDOWN, poll_frequency=0.5, ignored_exceptions=(JavascriptException,)).until(
            lambda d: d.execute_script(f"return {script}"))
    except TimeoutException:
        shot(driver, f"timeout-{what.replace(' ', '-')}")
        notice = driver.execute_script("return document.querySelector('#notice')?.innerText")
        pytest.fail(f"{what} did not happen within {timeout * SLOWDOWN:g} s; the page's notice: {notice!r}")


def screenshot(take):
    """``take()`` retried: on a loaded machine the renderer may not answer within chromedriver's 10 s."""
    from selenium.common.exceptions import TimeoutException

    for attempt in range(3):
        try:
            return take()
        except TimeoutException:
            if attempt == 2:
                raise


def shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    screenshot(lambda: driver.save_screenshot(str(path)))
    return path


def upload(driver, container: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"{container} input[type=file]").send_keys(str(path))


def open_advanced(driver) -> None:
    from selenium.webdriver.common.by import By

    if not driver.find_elements(By.CSS_SELECTOR, "#form-steps input"):  # the Advanced accordion is closed (e.g. after a reload)
        driver.find_element(By.CSS_SELECTOR, "#advanced .label-wrap").click()
        wait_for(driver, "document.querySelector('#form-steps input') !== null", 10, "the Advanced settings opening")


def set_steps(driver, steps: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_advanced(driver)
    field = driver.find_element(By.CSS_SELECTOR, "#form-steps input")
    driver.execute_script("arguments[0].scrollIntoView()", field)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(steps), Keys.TAB)


def pick_in_history(driver, name: str) -> None:
    """Picks the History entry of the job folder ``name`` as a user does: open the list, click the entry."""
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, "#history input")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
    field.click()
    entries = "[...document.querySelectorAll('#history li[data-testid=dropdown-option]')]"
    wait_for(driver, f"{entries}.some(li => li.innerText.includes({json.dumps(name + ':')}))", 10, f"{name} in the History list")
    entry = driver.execute_script(f"return {entries}.find(li => li.innerText.includes(arguments[0]))", name + ":")
    driver.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", entry)
    entry.click()


FORM_VALUES = ("[document.querySelector('#prompt textarea').value, document.querySelector('#form-frames input').value,"
               " document.querySelector('#photo img') !== null]")  # what the tests read of the form: prompt, Frames, a photo


def notice(driver) -> str:
    return driver.execute_script("return document.querySelector('#notice').innerText")


def viewer_pixels(driver, element: str) -> np.ndarray:
    """[H, W, 3] float: a screenshot of the viewer's canvas."""
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.CSS_SELECTOR, f"{element} canvas")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    return np.asarray(Image.open(io.BytesIO(screenshot(lambda: canvas.screenshot_as_png))).convert("RGB"), dtype=np.float64)


VIDEO = "document.querySelector('#video video')"
VIDEO_READY = f"{VIDEO} !== null && {VIDEO}.readyState >= 2"


def test_reload_queue_errors_and_cancel_in_chromium(app, browser):
    from selenium.webdriver.common.by import By

    url, share, log = app
    new_session(browser, url)
    upload(browser, "#photo", REPO / "assets" / "barn.png")
    wait_for(browser, "document.querySelector('#photo img') !== null", 30, "the photo preview")
    browser.find_element(By.CSS_SELECTOR, "#directors img[alt^='orbit_left ']").click()
    wait_for(browser, "document.querySelector('#motion input').value == 'orbit_left'", 10, "picking orbit_left")
    browser.find_element(By.ID, "generate").click()
    wait_for(browser, VIDEO_READY, 120, "the first video")  # also gives Gradio a measured job time for its ETA
    first = browser.execute_script(f"return {VIDEO}.src")

    # reload mid-Generate: the job goes on, the reloaded page says so and shows the result when it is done
    set_steps(browser, LONG_STEPS)
    with slowed(share.parent):  # the tiny model's steps take milliseconds: the job must outlast the reload
        browser.find_element(By.ID, "generate").click()
        wait_for(browser, f"/running: step [0-9]+\\/{LONG_STEPS}, about [0-9]+ s left/.test(document.querySelector('#video .progress-level-inner')?.innerText || '')",
                 60, "the second Generate's steps and time left in the video box")
        browser.refresh()
        wait_for(browser, f"/Generate is running: step [0-9]+\\/{LONG_STEPS}, about [0-9]+ s left/.test(document.querySelector('#running').innerText)"
                          f" && /running: step [0-9]+\\/{LONG_STEPS}/.test(document.querySelector('#video .progress-level-inner')?.innerText || '')",
                 60, "the reloaded page saying how far Generate is, also in the video box")
        shot(browser, "1-reloaded-mid-generate")
    wait_for(browser, f"{VIDEO_READY} && {VIDEO}.src != {json.dumps(first)}", 180, "the second video after the reload")
    second = browser.execute_script(f"return {VIDEO}.src")
    assert browser.execute_script("return document.querySelector('#photo img') !== null")  # the photo is back too

    # another session (an API client) runs a long Generate: this page's Generate waits, showing its place and an ETA
    from gradio_client import Client, handle_file

    other = Client(url, verbose=False)
    form = ["a lighthouse", "orbit_left", "none", 1.0, "none", 0, 42, CANCELLED_STEPS, 6.0, 9, "exact"]  # VideoForm's fields

    def other_session_runs():
        """A Generate of the other session that runs (its steps have begun) until the test cancels it."""
        other.predict(handle_file(str(REPO / "assets" / "lighthouse.png")), *form, api_name="/on_generate")
        job = other.submit(api_name="/wait_generate")
        deadline = time.monotonic() + 120 * SLOWDOWN
        while not (job.status().progress_data and (job.status().progress_data[0].index or 0) >= 1):
            assert not job.done() and time.monotonic() < deadline, "the other session's Generate did not start"
            time.sleep(0.5)
        return job

    with slowed(share.parent):  # until the test cancels it, the other session's job runs on
        blocker = other_session_runs()
        set_steps(browser, 2)
        browser.find_element(By.ID, "generate").click()
        waiting = "/waiting: place 1 of 1, about [0-9]+ s/"  # the ETA from the measured times of the Generates before
        wait_for(browser, f"{waiting}.test(document.querySelector('#video .progress-level-inner')?.innerText || '')", 90,
                 "this page's place in the queue with an ETA")
        browser.execute_script("document.querySelector('#video').scrollIntoView()")
        shot(browser, "2-queued")

        # reload while WAITING: the page's wait goes, the job stays in the queue, runs, and its video arrives in the new page
        browser.refresh()
        wait_for(browser, f"{waiting}.test(document.querySelector('#running').innerText)"
                          f" && {waiting}.test(document.querySelector('#video .progress-level-inner')?.innerText || '')", 60,
                 "the reloaded page showing the waiting job's place and ETA, also in the video box")
        shot(browser, "2-reloaded-while-waiting")
        other.predict(api_name="/on_cancel")  # the other session's job stops at its next step; this one runs
        assert "cancelled" in str(blocker.result(timeout=60 * SLOWDOWN))
    wait_for(browser, f"{VIDEO_READY} && {VIDEO}.src != {json.dumps(second)}", 240, "the waiting job's video in the reloaded page")
    finished = browser.execute_script(f"return {VIDEO}.src")

    # Cancel removes a waiting job: it never runs, and the other session's running job goes on
    with slowed(share.parent):
        blocker = other_session_runs()
        browser.find_element(By.ID, "generate").click()
        wait_for(browser, f"{waiting}.test(document.querySelector('#video .progress-level-inner')?.innerText || '')", 60,
                 "this page's job waiting again")
        browser.find_element(By.ID, "cancel").click()
        wait_for(browser, "document.querySelector('#notice').innerText.includes('the job was cancelled; nothing was written')", 30,
                 "the waiting job cancelled")
        wait_for(browser, "document.querySelector('#running').innerText === ''", 10, "the page no longer naming a job")
        assert not blocker.done(), "Cancel stopped the other session's job"
        assert browser.execute_script(f"return {VIDEO}.src") == finished
        shot(browser, "2-cancelled-while-waiting")
        other.predict(api_name="/on_cancel")
        blocker.result(timeout=60 * SLOWDOWN)

    # errors in words: a text file named .png, a settings file of something else
    fake = share.parent / "fake.png"
    fake.write_text("not a photo, a text file renamed .png\n")
    upload(browser, "#photo", fake)
    wait_for(browser, "document.querySelector('#notice').innerText.includes('is not an image')", 30, "the fake PNG refused")
    assert "fake.png is not an image" in notice(browser) and "/" not in notice(browser).split("upload a photo")[0]
    assert browser.execute_script("return document.querySelector('#photo img') === null")  # the box is empty again
    unrelated = share.parent / "settings.json"
    unrelated.write_text(json.dumps({"name": "my project", "version": 3}))
    open_advanced(browser)
    browser.execute_script("return document.querySelector('#reproduce').parentElement.querySelector('input[type=file]')"
                           ).send_keys(str(unrelated))  # the upload button's file input sits beside it
    wait_for(browser, "document.querySelector('#notice').innerText.includes('is not a video')", 30, "the bad sidecar refused")
    assert "settings.json is not a video's settings" in notice(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, ".error")  # no red error badges on the form
    browser.execute_script("[...document.querySelectorAll('#recon-upload button')].find(b => b.getAttribute('aria-label') == 'Clear')"
                           ".click()")  # the video box holds the generated video: the user empties it to upload one
    wait_for(browser, "document.querySelector('#recon-upload input[type=file]') !== null", 10, "the video box emptied")
    fake_clip = share.parent / "clip.mp4"
    fake_clip.write_text("not a video, a text file renamed .mp4\n")
    upload(browser, "#recon-upload", fake_clip)
    wait_for(browser, "document.querySelector('#notice').innerText.includes('clip.mp4 is not a video that can be played')", 30,
             "the fake video refused")
    wait_for(browser, "document.querySelector('#recon-upload input[type=file]') !== null", 10, "the refused video's box emptied")
    shot(browser, "3-errors")

    # a Generate that fails while no page is open (the tab was closed): the next page tells it, once, in words
    from dimensionx.app.access import COOKIE

    token = next(c["value"] for c in browser.get_cookies() if c["name"] == COOKIE)
    browser.get("about:blank")
    closed = Client(url, verbose=False, headers={"Cookie": f"{COOKIE}={token}"})  # what the closed page had sent
    closed.predict(handle_file(str(REPO / "assets" / "barn.png")), *form[:7], 2, 6.0, 10, "exact", api_name="/on_generate")
    browser.get(url)
    told = wait_for(browser, "(t => /Generate did not finish: Frames 10: CogVideoX makes 4k\\+1 frames/.test(t) && t)"
                             "(document.querySelector('#notice').innerText)", 60, "the reopened page telling the failed Generate")
    assert "--" not in told and str(share) not in told, told
    open_advanced(browser)  # the failed job's photo and form are back, to fix *Frames* and press Generate again
    wait_for(browser, f"JSON.stringify({FORM_VALUES}) == '[\"a lighthouse\",\"10\",true]'", 10, "the failed job's photo and form")
    shot(browser, "3-failed-while-away")
    time.sleep(POLL_SECONDS + 1)  # the page's waits after its load and a poll have run since: the news stays to be read
    assert "Generate did not finish: Frames 10: CogVideoX makes 4k+1 frames" in notice(browser), notice(browser)
    browser.refresh()
    wait_for(browser, VIDEO_READY, 60, "the reloaded page")  # its notice comes with the restored video: told again, or empty
    wait_for(browser, "document.querySelector('#notice').innerText === ''", 30, "a second reload not telling the failure again")

    # History: the first video's photo and settings come back in place of the failed job's (its Frames 9, not 10)
    browser.execute_script("[...document.querySelectorAll('#photo button')].find(b => b.getAttribute('aria-label') == 'Remove Image')"
                           ".click()")
    wait_for(browser, "document.querySelector('#photo img') === null", 10, "the photo box emptied")
    pick_in_history(browser, "video-001")
    open_advanced(browser)
    wait_for(browser, f"JSON.stringify({FORM_VALUES}) == '[\"a red barn in a field\",\"9\",true]' && {VIDEO_READY}", 30,
             "the first video's photo and form, from History")
    finished = browser.execute_script(f"return {VIDEO}.src")
    shot(browser, "3-picked-in-history")

    # Cancel with nothing running, then Cancel mid-run (of the picked video's photo and form): one sentence each, the
    # video shown stays
    browser.find_element(By.ID, "cancel").click()
    wait_for(browser, "document.querySelector('#notice').innerText.includes('Nothing of this page is running')", 10,
             "Cancel while idle answered")
    set_steps(browser, CANCELLED_STEPS)
    with slowed(share.parent):
        browser.find_element(By.ID, "generate").click()
        # a step counter "12/1000" with the time left, and the app's own word that the job runs
        wait_for(browser, f"/running: step [0-9]+\\/{CANCELLED_STEPS}, about/.test(document.querySelector('#video .progress-level-inner')?.innerText || '')"
                          " && document.querySelector('#running').innerText.includes('Generate is running')", 60,
                 "the denoising steps running")
        browser.find_element(By.ID, "cancel").click()
        wait_for(browser, "document.querySelector('#notice').innerText.includes('the job was cancelled; nothing was written')", 60,
                 "the cancel reported")
    assert browser.execute_script(f"return {VIDEO}.src") == finished and not browser.find_elements(By.CSS_SELECTOR, ".error")
    sessions = [p for p in share.iterdir() if p.is_dir() and p.name != "previews"]
    assert sorted(len(list(p.glob("video-*"))) for p in sessions) == [0, 3], log.read_text()  # the cancelled ones left nothing
    shot(browser, "4-cancelled")


def test_3d_viewer_draws_the_scene_and_files_stay_in_their_session(app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, share, log = app
    new_session(browser, url)
    clip = tmp_path / "synthetic_orbit.mp4"
    write_orbit_video(clip)
    upload(browser, "#recon-upload", clip)
    wait_for(browser, "document.querySelector('#recon-upload video') !== null", 30, "the clip upload")
    browser.find_element(By.ID, "build").click()
    wait_for(browser, "document.querySelector('#viewer .dx-splat')?.dataset.state == 'ready'", 240, "the 3D viewer's first frames")
    assert "PSNR on held-out frames" in browser.find_element(By.ID, "metrics").text
    pixels = viewer_pixels(browser, "#viewer")
    assert pixels.std(axis=(0, 1)).mean() > 8, "the viewer's canvas is a near-uniform image"  # an empty canvas: < 1
    shot(browser, "5-scene")

    own = browser.execute_script("return JSON.parse(document.querySelector('#viewer .dx-splat').dataset.scene).files[0]")
    others = [p for p in share.glob("*/video-001/video.mp4")]
    assert others, "the first test's sessions made videos"
    status = ("(async u => (await fetch(u, {credentials: 'same-origin'})).status)")
    assert browser.execute_script(f"return {status}(arguments[0])", own) == 200
    for other in others:  # this browser may not read another session's files, even knowing their URL
        assert browser.execute_script(f"return {status}(arguments[0])", f"/gradio_api/file={other}") == 403


def moving_scene4d(session: Path, clip: Path) -> None:
    """A finished 4D job in ``session`` whose scene moves: 300 splats and a deformation field with a cubic path
    in time (the tiny model's 4D fit barely moves in a run a CPU affords), recorded as the app records its jobs."""
    import torch

    from dimensionx.app.callbacks import Asked, Scene4DResult, VideoForm, save_result, viewer_frames
    from dimensionx.fourd.store import save_scene
    from dimensionx.splats.gaussians import init_splats
    from test_fourd_export import cubic_field

    folder = session / "scene4d-001"
    rng = np.random.default_rng(0)
    splats = init_splats(rng.uniform(-1, 1, (300, 3)), rng.integers(0, 256, (300, 3), dtype=np.uint8), 1, 0.5, 1.0)
    field = cubic_field(torch.tensor([[-1.0] * 3, [1.0] * 3]))  # positions move along cubic paths in time
    with torch.no_grad():
        field.heads["means"][-1].weight.mul_(10.0)  # by about a quarter of the scene's size
    cameras = arc_cameras(5, 40.0)
    save_scene(folder / "scene4d", splats, field, [0.0, 0.25, 0.5, 0.75, 1.0], cameras,
               np.repeat(intrinsics(96, 64)[None], 5, 0), 96, 64)
    frames, times = viewer_frames(folder / "scene4d", folder / "viewer", 5)
    shutil.copyfile(clip, folder / "orbit.mp4")  # stand-ins for the job's renders, which this test does not look at
    shutil.copyfile(REPO / "assets" / "snowman.png", folder / "photo.png")
    result = Scene4DResult(folder.name, folder / "orbit.mp4", folder / "orbit.mp4", [folder / "scene4d" / "transforms.json"],
                           {"psnr": None}, "4D scene (synthetic, moving)", frames, times, folder / "scene4d" / "transforms.json",
                           Asked(folder / "photo.png", VideoForm(prompt="a snowman in a garden", seed=3)))
    save_result(result, session, folder)


def test_4d_viewer_time_slider_changes_the_scene_in_chromium(app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    from dimensionx.app.access import COOKIE, folder_name

    url, share, log = app
    new_session(browser, url)
    token = next(c["value"] for c in browser.get_cookies() if c["name"] == COOKIE)
    clip = tmp_path / "clip.mp4"
    write_orbit_video(clip)
    moving_scene4d(share / folder_name(token), clip)  # finished while the page is open: the page's poll shows it
    wait_for(browser, "document.querySelector('#viewer4d .dx-splat')?.dataset.state == 'ready'", 60, "the 4D viewer's first frames")
    assert browser.execute_script("return document.querySelector('#viewer4d .dx-splat').dataset.time") == "0.00"
    pause = "return new Promise(r => setTimeout(r, 2000))"  # a few frames: the camera settles, the depth sort too
    browser.execute_script(pause)
    before = viewer_pixels(browser, "#viewer4d")
    browser.execute_script(pause)
    still = viewer_pixels(browser, "#viewer4d")  # the same time again: how much the picture moves by itself
    browser.execute_script("const s = document.querySelector('#viewer4d .dx-time-slider'); s.value = s.max;"
                           "s.dispatchEvent(new Event('input'))")
    wait_for(browser, "document.querySelector('#viewer4d .dx-splat').dataset.time == '1.00'", 10, "the slider at time 1")
    browser.execute_script(pause)
    after = viewer_pixels(browser, "#viewer4d")
    assert before.std(axis=(0, 1)).mean() > 8, "the 4D viewer's canvas is a near-uniform image"
    drift, change = np.abs(still - before).mean(), np.abs(after - still).mean()
    assert change > 1.0 and change > 5 * drift, f"moving the time slider left the picture as it was ({change:.2f} vs {drift:.2f})"
    assert "time 1.00" in browser.find_element(By.CSS_SELECTOR, "#viewer4d .dx-time").text
    shot(browser, "6-scene4d")

    browser.refresh()  # a session with only a 4D scene: the reloaded page shows it with the photo and form that made it
    wait_for(browser, "document.querySelector('#viewer4d .dx-splat')?.dataset.state == 'ready'", 60, "the 4D scene after a reload")
    wait_for(browser, "document.querySelector('#photo img') !== null", 10, "the 4D scene's photo after a reload")
    assert browser.execute_script("return document.querySelector('#prompt textarea').value") == "a snowman in a garden"
