"""Resume bookkeeping in the run folder itself: the log is cut back to the checkpoint's step, then continued."""

from __future__ import annotations

import json
import shutil

import pytest

from test_train_resume import logged_losses, train, write_distinct_clips


@pytest.mark.slow  # two tiny trainings of 4 and 2 steps
def test_a_resume_in_the_run_folder_keeps_the_log_up_to_its_checkpoint(tmp_path):
    """A run that logged step 4 but died before its checkpoint was kept resumes from step 2: the log keeps
    steps 1-2 (those of the checkpoint's past, its own step included) and the resumed run logs 3-4 again."""
    data = write_distinct_clips(tmp_path / "clips", 2)
    run, flags = tmp_path / "run", ["--max-steps", "4", "--checkpoint-every", "2"]
    train(data, run, *flags)
    first = logged_losses(run)
    shutil.rmtree(run / "checkpoints" / "step_000004")
    (run / "pytorch_lora_weights.safetensors").unlink()
    train(data, run, *flags, "--resume")
    steps = [line["step"] for line in map(json.loads, (run / "train_log.jsonl").read_text().splitlines())]
    assert steps == [1, 2, 3, 4]
    assert logged_losses(run) == pytest.approx(first, rel=1e-6)  # the resumed steps are the first run's
