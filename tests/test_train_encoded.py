"""Pre-encoded training data (encoded.json): checked before any model loads, trained on without the VAE and T5,
and giving the LoRA of the run that encoded it."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dimensionx import DimensionXError
from dimensionx.cli import main
from dimensionx.train.encoded import MANIFEST, find_encoded

from train_synthetic import write_clips

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs" / "train" / "tiny.yaml")]


def clip_tensors(latent_frames: int = 3) -> dict[str, torch.Tensor]:
    return {"latents": torch.zeros(latent_frames, 16, 8, 12), "image_latents": torch.zeros(4, 1, 16, 8, 12),
            "prompt_embeds": torch.zeros(226, 32)}


def write_manifest(folder: Path, entries: list[dict], frames: int = 9, height: int = 64, width: int = 96) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text(json.dumps({"frames": frames, "height": height, "width": width, "clips": entries}))
    return folder


def test_bad_entries_are_reported_and_skipped(tmp_path):
    save_file(clip_tensors(), str(tmp_path / "good.safetensors"))
    save_file(clip_tensors(latent_frames=13), str(tmp_path / "long.safetensors"))  # 49 frames' latents
    save_file({"latents": torch.zeros(3, 16, 8, 12)}, str(tmp_path / "partial.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    write_manifest(tmp_path, [{"file": name, "caption": "c"} for name in
                              ("good.safetensors", "long.safetensors", "partial.safetensors", "junk.safetensors", "gone.safetensors")])

    found = find_encoded(tmp_path / MANIFEST, frames=9)  # 9 frames -> 3 latent frames

    assert [c.video.name for c in found.clips] == ["good.safetensors"]
    reasons = {b.video: b.reason for b in found.bad}
    assert reasons["long.safetensors"] == "13 latent frames, expected 3"
    assert "image_latents missing" in reasons["partial.safetensors"]
    assert reasons["junk.safetensors"].startswith("unreadable")
    assert reasons["gone.safetensors"].startswith("file not found")
    assert found.encoded == {"frames": 9, "height": 64, "width": 96}


def test_wrong_frames_size_or_sampling_fail_before_any_model_loads(tmp_path, monkeypatch):
    import diffusers

    from dimensionx.train.trainer import train

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(diffusers.CogVideoXTransformer3DModel, "from_pretrained", no_model)
    data = write_manifest(tmp_path / "data", [{"file": "a.safetensors", "caption": "c"}], height=480, width=720)
    save_file(clip_tensors(), str(data / "a.safetensors"))
    with pytest.raises(DimensionXError, match="encoded at 480x720 px but the model makes 64x96"):
        train(config(data, tmp_path / "run"))
    with pytest.raises(DimensionXError, match="encoded at 9 frames but frames is 49: pass --frames 9"):
        train(config(data, tmp_path / "run", frames=49))
    with pytest.raises(DimensionXError, match="sample videos need the clips' frames"):
        train(config(data, tmp_path / "run", sample_every=1))


def config(data: Path, out: Path, **changes):
    import dataclasses

    from dimensionx.config import load_config
    from dimensionx.train.config import TrainConfig

    base = load_config(TrainConfig, str(ROOT / "configs" / "train" / "tiny.yaml"), {"data": str(data), "output_dir": str(out)})
    return dataclasses.replace(base, **changes)


def test_manifest_of_a_pre_encode_run_trains_to_the_same_lora_without_the_encoders(tmp_path, monkeypatch):
    data = write_clips(tmp_path / "clips")
    steps = ["--max-steps", "3", "--checkpoint-every", "0"]
    assert main(["train", *TINY, "--pre-encode", "--data", str(data), "--output-dir", str(tmp_path / "videos"), *steps]) == 0
    (manifest,) = (data / ".dimensionx-cache").glob("encoded_*.json")
    listed = json.loads(manifest.read_text())
    assert (listed["frames"], listed["height"], listed["width"]) == (9, 64, 96)
    assert sorted(e["caption"] for e in listed["clips"]) == sorted(line.split(",", 1)[1] for line in
                                                                    (data / "metadata.csv").read_text().splitlines()[1:])

    import diffusers
    import transformers

    def no_encoder(*args, **kwargs):
        raise AssertionError("an encoder was loaded")

    monkeypatch.setattr(diffusers.AutoencoderKLCogVideoX, "from_pretrained", no_encoder)
    monkeypatch.setattr(transformers.T5EncoderModel, "from_pretrained", no_encoder)
    assert main(["train", *TINY, "--data", str(manifest), "--output-dir", str(tmp_path / "encoded"), *steps]) == 0

    a, b = (load_file(str(tmp_path / run / "pytorch_lora_weights.safetensors")) for run in ("videos", "encoded"))
    assert a.keys() == b.keys() and len(a) == 16
    for key in a:  # same latents, same data order and draws: the same LoRA, bit for bit on a CPU
        assert torch.equal(a[key], b[key]), key
    assert any(float(v.abs().max()) > 0 for k, v in b.items() if "lora_B" in k), "the LoRA trained"
    report = json.loads((tmp_path / "encoded" / "data_report.json").read_text())
    assert report["pre_encoded"] is True and report["usable"] == 2


def test_under_deepspeed_the_loop_autocasts_a_bf16_module_on_fp32_data():
    from accelerate.utils import DistributedType

    from dimensionx.train.trainer import forward_precision

    layer = torch.nn.Linear(4, 3).to(torch.bfloat16)  # DeepSpeed casts the module to bf16; the batch stays fp32
    x = torch.randn(2, 4)
    deepspeed = types.SimpleNamespace(distributed_type=DistributedType.DEEPSPEED, device=torch.device("cpu"))
    with forward_precision(deepspeed, torch.bfloat16):
        y = layer(x)
    torch.testing.assert_close(y.float(), x.bfloat16().float() @ layer.weight.float().T + layer.bias.float(), rtol=2e-2, atol=2e-2)
    ddp = types.SimpleNamespace(distributed_type=DistributedType.MULTI_GPU, device=torch.device("cpu"))
    with forward_precision(ddp, torch.bfloat16), pytest.raises(RuntimeError):  # accelerate's own autocast is not doubled
        layer(x)
