"""Shared fixtures: a private tiny-model cache, a private empty Hugging Face cache, test photos, the real data folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

# Tests never read the machine's Hugging Face cache: huggingface_hub reads these variables when
# it is first imported (during collection, before any fixture runs), so they are set here.
HF_HOME = Path(tempfile.mkdtemp(prefix="dimensionx-test-hf-"))
os.environ["HF_HOME"] = str(HF_HOME)
os.environ["HF_HUB_CACHE"] = str(HF_HOME / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def empty_hf_cache():
    yield HF_HOME
    shutil.rmtree(HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def tiny_cache(tmp_path_factory) -> Path:
    """Every test session builds the tiny model from config into its own cache, as a fresh machine would."""
    cache = Path(os.environ.get("DIMENSIONX_TEST_CACHE") or tmp_path_factory.mktemp("dimensionx-cache"))
    os.environ["DIMENSIONX_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_cache) -> Path:
    from dimensionx.models.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture
def photo(tmp_path) -> Path:
    """A 150x100 px photo with structure (gradient + disc), not flat noise."""
    y, x = np.mgrid[0:100, 0:150]
    rgb = np.stack([x / 150 * 255, y / 100 * 255, ((x - 75) ** 2 + (y - 50) ** 2 < 900) * 255], -1)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def shared_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real test data {relative} not found in {SHARED_DATA.resolve()} (the shared/ folder beside the repo)")
    return path


@pytest.fixture
def ended_pid() -> int:
    """The id of a process that has ended: temporary outputs named after it (``.NAME.tmp-PID-...``) are a killed run's."""
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
