"""Each rule of ``--overwrite`` refuses on its own: every folder below holds an output marker, so
only the rule under test stands between ``--overwrite`` and the folder, and each refusal is
checked for its own wording (not the phrase all refusals share)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dimensionx.errors import DimensionXError
from dimensionx.outputs import atomic_dir, check_output_dir, OUTPUT_MARKER

PROTECTED = "it is the root, home or working folder or a parent of it"  # the guard's rule
FOREIGN = f"it holds files dimensionx did not write (no {OUTPUT_MARKER})"  # the marker's rule
NOT_A_FOLDER = "it is not a folder this tool wrote"
EXISTS = "already exists: pass --overwrite to replace it"


def marked(folder: Path) -> Path:
    """``folder`` made to look like our output: only the protected-folder rule can refuse it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OUTPUT_MARKER).write_text(json.dumps({"tool": "dimensionx"}))
    (folder / "thesis.tex").write_text("years of work")
    return folder


def refusal(path, overwrite: bool = True) -> str:
    with pytest.raises(DimensionXError) as error:
        check_output_dir(path, overwrite)
    return str(error.value)


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The working folder (marked), inside a marked parent, with HOME elsewhere."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    work = marked(marked(tmp_path / "projects") / "work")
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("out", [".", "{work}", "./data/.."])
def test_the_working_folder_is_refused_by_the_protected_folder_rule(work, out):
    (work / "data").mkdir()
    message = refusal(out.format(work=work))
    assert PROTECTED in message and str(work) in message
    assert (work / "thesis.tex").is_file()


def test_a_parent_of_the_working_folder_is_refused_by_the_protected_folder_rule(work):
    assert PROTECTED in refusal("..")
    assert PROTECTED in refusal(work.parent.parent)  # tmp_path: not marked, but the guard speaks first


def test_the_home_folder_is_refused_by_the_protected_folder_rule(work):
    home = marked(Path(os.environ["HOME"]))
    (home / ".config").mkdir()
    assert PROTECTED in refusal(home)
    assert PROTECTED in refusal(home / ".config" / "..")


def test_the_root_is_refused_by_the_protected_folder_rule(work):
    assert PROTECTED in refusal(Path(Path.cwd().anchor))


def test_a_link_to_the_working_folder_is_refused_by_the_protected_folder_rule(work, tmp_path):
    link = tmp_path / "elsewhere" / "out"
    link.parent.mkdir()
    link.symlink_to(work)
    assert PROTECTED in refusal(link)
    assert (work / "thesis.tex").is_file()


def test_a_marked_folder_beside_the_working_folder_is_replaceable(work):
    check_output_dir(marked(work.parent / "scene"), overwrite=True)
    check_output_dir(marked(work / "scene"), overwrite=True)


def test_a_folder_without_the_marker_is_refused_by_the_marker_rule(work):
    (work / "photos").mkdir()
    message = refusal(work / "photos")
    assert FOREIGN in message and PROTECTED not in message


def test_a_scene_folder_from_before_the_marker_is_known_by_its_metrics(work):
    old = work / "old-scene"
    old.mkdir()
    (old / "metrics.json").write_text(json.dumps({"config": {"iterations": 10}}))
    check_output_dir(old, overwrite=True)
    (old / "metrics.json").write_text(json.dumps({"psnr": 30.0}))
    assert FOREIGN in refusal(old)
    (old / "metrics.json").write_text("not json")
    assert FOREIGN in refusal(old)


def test_a_file_is_refused_by_the_not_a_folder_rule(work):
    (work / "notes.txt").write_text("mine")
    message = refusal(work / "notes.txt")
    assert NOT_A_FOLDER in message and FOREIGN not in message


def test_without_overwrite_an_existing_output_is_refused_by_the_exists_rule(work):
    scene = marked(work / "scene")
    message = refusal(scene, overwrite=False)
    assert EXISTS in message
    check_output_dir(work / "new-scene", overwrite=False)


def test_an_output_under_a_file_is_refused_by_the_parent_rule(work):
    (work / "notes.txt").write_text("mine")
    assert "notes.txt is a file, not a folder" in refusal(work / "notes.txt" / "scene", overwrite=False)


def test_atomic_dir_refuses_the_working_folder_before_the_block_runs(work):
    with pytest.raises(DimensionXError, match="root, home or working folder"):
        with atomic_dir(".", overwrite=True):
            raise AssertionError("the block must not run")
    assert sorted(p.name for p in work.iterdir()) == [OUTPUT_MARKER, "thesis.tex"]


def test_cli_out_dot_overwrite_in_a_marked_working_folder_deletes_nothing(work):
    (work / "clip.mp4").write_bytes(b"not really a video")
    before = sorted(p.name for p in work.iterdir())
    result = subprocess.run([sys.executable, "-m", "dimensionx.cli", "recon", "clip.mp4", "--out", ".", "--overwrite"],
                            cwd=work, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and PROTECTED in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in work.iterdir()) == before
