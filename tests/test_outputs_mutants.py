"""Output folders of the long, resumable commands (``scene4d``, ``train``): a nested ``--out`` that does not
exist yet is created with its parents, and marked as this tool's output."""

from __future__ import annotations

import json

from dimensionx.outputs import OUTPUT_MARKER, start_output_dir


def test_a_new_nested_output_folder_is_created_with_its_parents_and_marked(tmp_path):
    out = tmp_path / "runs" / "2026" / "scene"
    assert start_output_dir(out, overwrite=False, stage="scene4d") is None  # nothing set aside
    marker = json.loads((out / OUTPUT_MARKER).read_text())
    assert marker["tool"] == "dimensionx" and marker["stage"] == "scene4d" and "replaces" not in marker
