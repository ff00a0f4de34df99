"""The app's upload checks and session folders, each rule at its boundary and named by its own wording."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from dimensionx.app.sessions import SESSION_MARKER, Sessions
from dimensionx.app.uploads import check_image_upload, check_sidecar_upload, check_video_upload
from dimensionx.errors import DimensionXError


def sized(path, size: int):
    """A file of exactly ``size`` bytes: for a .json, a sidecar as the app reads it, padded with spaces."""
    if path.suffix.lower() == ".json":
        text = json.dumps({"config": {}, "directors": []})
        path.write_text(text + " " * (size - len(text)))
    else:
        path.write_bytes(b"\0" * size)
    return path


@pytest.mark.parametrize("check, suffix", [(check_video_upload, ".mp4"), (check_sidecar_upload, ".json")])
def test_an_upload_of_exactly_the_limit_passes_and_one_byte_more_is_refused(tmp_path, check, suffix):
    assert check(sized(tmp_path / f"at{suffix}", 1_000_000), max_mb=1) == tmp_path / f"at{suffix}"
    with pytest.raises(DimensionXError, match=rf"over{suffix} is 1\.0 MB; the limit is 1 MB: upload a smaller file"):
        check(sized(tmp_path / f"over{suffix}", 1_000_001), max_mb=1)


def image(path, width: int, height: int):
    Image.new("RGB", (width, height)).save(path)
    return path


def test_an_image_of_exactly_the_pixel_limit_passes_and_one_column_more_is_refused(tmp_path):
    assert check_image_upload(image(tmp_path / "at.png", 40, 30), max_mb=1, max_megapixels=0.0012) == tmp_path / "at.png"
    with pytest.raises(DimensionXError, match=r"over\.png is 41x30 px \(0 MP\); the limit is 0\.0012 MP"):
        check_image_upload(image(tmp_path / "over.png", 41, 30), max_mb=1, max_megapixels=0.0012)
    with pytest.raises(DimensionXError, match=r"wide\.png is 30x41 px"):
        check_image_upload(image(tmp_path / "wide.png", 30, 41), max_mb=1, max_megapixels=0.0012)


def test_the_pixel_refusal_states_the_megapixels(tmp_path):
    with pytest.raises(DimensionXError, match=r"is 1500x1000 px \(2 MP\); the limit is 1 MP: upload a smaller photo"):
        check_image_upload(image(tmp_path / "big.png", 1500, 1000), max_mb=10, max_megapixels=1)


def test_an_image_over_the_size_limit_is_refused_before_it_is_opened(tmp_path):
    with pytest.raises(DimensionXError, match=r"the uploaded image big\.png is 2\.0 MB; the limit is 1 MB"):
        check_image_upload(sized(tmp_path / "big.png", 2_000_000), max_mb=1, max_megapixels=100)


def test_a_file_that_is_no_image_is_refused_by_the_type_rule(tmp_path):
    """In the page's words, not Pillow's exception names: a text file, and a PNG cut short after its header."""
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DimensionXError, match=r"^the uploaded file notes\.png is not an image \(no image format we read\): upload a photo"):
        check_image_upload(tmp_path / "notes.png", max_mb=1, max_megapixels=100)
    whole = image(tmp_path / "whole.png", 64, 48)
    (tmp_path / "cut.png").write_bytes(whole.read_bytes()[:60])
    with pytest.raises(DimensionXError, match=r"^the uploaded file cut\.png is not an image \(damaged or cut short\): upload a photo"):
        check_image_upload(tmp_path / "cut.png", max_mb=1, max_megapixels=100)
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)  # a PNG whose header claims 900 MP
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(DimensionXError, match=r"^the uploaded file bomb\.png is not an image \(more pixels than any photo"):
        check_image_upload(tmp_path / "bomb.png", max_mb=1, max_megapixels=100)


@pytest.mark.parametrize("missing", [None, ""])
def test_no_upload_is_refused_by_the_nothing_uploaded_rule(missing):
    with pytest.raises(DimensionXError, match=r"^no image: upload a photo"):
        check_image_upload(missing, max_mb=1, max_megapixels=1)
    with pytest.raises(DimensionXError, match=r"^no settings file: upload the \.json"):
        check_sidecar_upload(missing, max_mb=1)


def test_upload_types_are_known_by_suffix_in_any_case(tmp_path):
    assert check_video_upload(sized(tmp_path / "CLIP.MP4", 10), max_mb=1).name == "CLIP.MP4"
    assert check_sidecar_upload(sized(tmp_path / "video.JSON", 10), max_mb=1).name == "video.JSON"
    with pytest.raises(DimensionXError, match=r"clip\.txt is not a video: upload one of \.mp4"):
        check_video_upload(sized(tmp_path / "clip.txt", 10), max_mb=1)
    with pytest.raises(DimensionXError, match=r"video\.yaml is not a settings sidecar"):
        check_sidecar_upload(sized(tmp_path / "video.yaml", 10), max_mb=1)


def test_the_share_folder_is_made_with_its_parents(tmp_path):
    sessions = Sessions(tmp_path / "a" / "b" / "share", ttl_seconds=60)
    assert sessions.root.is_dir() and sessions.root == (tmp_path / "a" / "b" / "share").resolve()


def test_jobs_are_numbered_per_kind_from_one(tmp_path):
    sessions = Sessions(tmp_path / "share", ttl_seconds=60)
    first = sessions.new_job("session-1", "video")
    assert first == sessions.root / "session-1" / "video-001" and not first.exists()
    first.mkdir()
    assert sessions.new_job("session-1", "video").name == "video-002"
    assert sessions.new_job("session-1", "scene").name == "scene-001"
    assert sessions.new_job("session-2", "video").name == "video-001"


def test_a_session_untouched_for_exactly_the_time_to_live_is_kept(tmp_path):
    sessions = Sessions(tmp_path / "share", ttl_seconds=600)
    folder = sessions.folder("session-1")
    os.utime(folder / SESSION_MARKER, (1_000_000, 1_000_000))  # its clock: the marker's time
    assert sessions.sweep(now=1_000_600) == [] and folder.is_dir()
    assert sessions.sweep(now=1_000_600.5) == [folder] and not folder.exists()


def test_a_link_in_the_share_folder_is_never_swept(tmp_path):
    sessions = Sessions(tmp_path / "share", ttl_seconds=0)
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    (sessions.root / "link-to-mine").symlink_to(elsewhere)
    os.utime(elsewhere, (1, 1))
    assert sessions.sweep() == [] and elsewhere.is_dir()


@pytest.mark.parametrize("session_id", ["short", "a/../../etc", "x" * 65, "", None])
def test_a_session_id_that_is_not_a_plain_name_is_refused(tmp_path, session_id):
    with pytest.raises(DimensionXError, match="is not a plain name: reload the page"):
        Sessions(tmp_path / "share", ttl_seconds=60).folder(session_id)
