"""End to end in a real browser: headless Chromium drives ``dimensionx app --model tiny``.

Upload a photo, pick orbit_left in the gallery, Generate, see the video play; upload a
known-good clip (the synthetic splat scene, whose SfM succeeds), Build 3D scene, see the
viewer's canvas and the held-out metrics. Screenshots go to $DIMENSIONX_ARTIFACTS (default
test-artifacts/app/); docs/app.png is one of them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from app_server import running_app
from recon_synthetic import arc_cameras, intrinsics, transforms_json, write_orbit_video

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("DIMENSIONX_ARTIFACTS") or REPO / "test-artifacts") / "app"
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Chromium or chromedriver not found: apt-get install chromium chromium-driver (.ci/run does)"),
]


@pytest.fixture
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


def wait_for(driver, script: str, timeout: float, what: str):
    """Polls a JavaScript expression until it is truthy; fails naming ``what`` and the page's error toasts."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(lambda d: d.execute_script(f"return {script}"))
    except TimeoutException:
        shot(driver, f"timeout-{what.replace(' ', '-')}")
        errors = driver.execute_script("return [...document.querySelectorAll('.toast-body')].map(e => e.innerText)")
        pytest.fail(f"{what} did not happen within {timeout:g} s; messages in the page: {errors}")


def shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def upload(driver, container: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"{container} input[type=file]").send_keys(str(path))


def test_generate_then_build_a_scene_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    photo = REPO / "assets" / "barn.png"
    clip = tmp_path / "synthetic_orbit.mp4"
    write_orbit_video(clip)
    cameras = tmp_path / "transforms.json"  # the tiny model's 4D grid is noise: known cameras instead of SfM
    cameras.write_text(json.dumps(transforms_json(arc_cameras(9, 40.0), intrinsics(96, 64), 96, 64)))
    fourd = tmp_path / "fourd.yaml"
    fourd.write_text((REPO / "configs" / "fourd_tiny.yaml").read_text() + f"cameras: {cameras}\n")
    with running_app(tmp_path, "--fourd-config", str(fourd)) as (url, log):
        browser.get(url)
        wait_for(browser, "document.querySelectorAll('#directors img').length == 17", 60, "the director gallery")

        upload(browser, "#photo", photo)
        wait_for(browser, "document.querySelector('#photo img') !== null", 30, "the photo preview")
        browser.find_element(By.CSS_SELECTOR, "#directors img[alt^='orbit_left ']").click()
        wait_for(browser, "document.querySelector('#motion input').value == 'orbit_left'", 10, "picking orbit_left")
        browser.find_element(By.ID, "generate").click()

        video = "document.querySelector('#video video')"
        wait_for(browser, f"{video} !== null && {video}.readyState >= 2", 120, "the generated video")
        browser.execute_script(f"{video}.muted = true; {video}.play()")
        wait_for(browser, f"!{video}.paused && {video}.currentTime > 0", 20, "the video playing")
        assert "orbit_left" in browser.find_element(By.ID, "summary").text
        shot(browser, "1-video")

        upload(browser, "#recon-upload", clip)
        wait_for(browser, "document.querySelector('#recon-upload video') !== null", 30, "the clip upload")
        browser.find_element(By.ID, "build").click()
        wait_for(browser, "document.querySelector('#viewer canvas') !== null", 120, "the 3D viewer's canvas")
        wait_for(browser, "document.querySelector('#metrics').innerText.includes('psnr')", 20, "the held-out metrics")
        browser.execute_script("document.querySelector('#viewer').scrollIntoView()")
        time.sleep(3)  # the splat viewer loads the file and sorts the splats over a few frames
        shot(browser, "2-scene")

        browser.find_element(By.ID, "build4d").click()
        orbit4d = "document.querySelector('#orbit4d video')"
        wait_for(browser, f"{orbit4d} !== null && {orbit4d}.readyState >= 2", 180, "the 4D scene's orbit")
        when = browser.find_element(By.CSS_SELECTOR, "#time4d input[type=number]")
        when.clear()
        when.send_keys("0.2", Keys.TAB)
        browser.find_element(By.ID, "render4d").click()
        wait_for(browser, f"{orbit4d} !== null && {orbit4d}.src.includes('orbit_t0.20') && {orbit4d}.readyState >= 2", 60,
                 "the orbit at the slider's time, 0.2")
        browser.execute_script(f"{orbit4d}.scrollIntoView()")
        shot(browser, "3-scene4d")

    scenes = sorted((tmp_path / "share").glob("*/scene-001"))
    assert len(scenes) == 1, log.read_text()
    metrics = json.loads((scenes[0] / "metrics.json").read_text())
    assert metrics["frames_registered"] == 16 and metrics["iterations"] == 10  # the uploaded clip, the app's recon config
    assert (scenes[0].parent / "video-001" / "video.mp4").is_file()
    scene4d = scenes[0].parent / "scene4d-001"
    assert (scene4d / "metrics.json").is_file() and (scene4d / "renders" / "orbit_t0.20.mp4").is_file(), log.read_text()
