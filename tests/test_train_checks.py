"""`dimensionx train` refuses each bad setting before any model loads, naming the setting and its rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from dimensionx.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("flags, rule", [
    (["--frames", "10"], "frames 10: CogVideoX takes 4k+1 frames"),
    (["--frames", "1"], "frames 1: use a number from 5 to 161 (the default is 49)"),
    (["--rank", "0"], "rank 0: use a number from 1 to 3072 (the default is 256)"),
    (["--grad-accumulation", "0"], "grad_accumulation 0: use a number from 1 to 1024 (the default is 1)"),
    (["--micro-batch", "-1"], "micro_batch -1: use a number from 1 to"),
    (["--mixed-precision", "fp8"], "mixed_precision 'fp8': use auto, bf16, fp16 or no"),
])
def test_a_bad_setting_is_refused_by_its_own_rule_before_anything_runs(tmp_path, capsys, flags, rule):
    out = tmp_path / "run"
    code = main(["train", "--config", str(ROOT / "configs" / "train" / "tiny.yaml"), "--data", str(tmp_path),
                 "--output-dir", str(out), *flags])
    assert code == 2
    assert rule in capsys.readouterr().err
    assert not out.exists()


def test_frames_of_the_form_4k_plus_1_pass_the_check(tmp_path, capsys):
    """--frames 5 passes the frame rule: the refusal that follows is about the (empty) data."""
    assert main(["train", "--config", str(ROOT / "configs" / "train" / "tiny.yaml"), "--data", str(tmp_path),
                 "--output-dir", str(tmp_path / "run"), "--frames", "5"]) == 2
    err = capsys.readouterr().err
    assert "4k+1" not in err and str(tmp_path) in err
