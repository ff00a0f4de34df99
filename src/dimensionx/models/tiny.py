"""A tiny random-weight CogVideoX image-to-video pipeline (its director LoRAs: ``directors/tiny.py``).

The tiny pipeline has the real architecture (3D transformer with rotary + learned positional
embeddings, causal 3D VAE, T5 encoder, T5 tokenizer, DPM scheduler) shrunk to a few
thousand parameters, so the whole stack runs on a CPU in seconds. It is built from config,
saved in the diffusers folder layout and then loaded back through the same
``from_pretrained`` call as ``THUDM/CogVideoX-5b-I2V``: tests exercise the real loading
path. Its frames are noise; it exists to check shapes, files and maths, never quality.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import torch

from ..diskerrors import as_os_errors
from ..outputs import atomic_dir

TINY_SEED = 0
# Latent grid 8 x 12 at VAE stride 8 -> 64 x 96 pixel frames; 49 frames -> 13 latent frames.
TINY_SAMPLE_HEIGHT = 8
TINY_SAMPLE_WIDTH = 12
TINY_LORA_RANK = 4
TINY_ORBIT_FRAMES = 33  # sample_frames of `tiny-orbit` (the real orbit model: 145); few, so CPU tests decode fast
TINY_VERSION = "1"  # bump when the tiny architecture changes, so stale caches are rebuilt


def tiny_cache_dir() -> Path:
    """Folder of the tiny model: ``$DIMENSIONX_CACHE/tiny-v1`` (default ``~/.cache/dimensionx``)."""
    root = Path(os.environ.get("DIMENSIONX_CACHE", Path.home() / ".cache" / "dimensionx"))
    return root / f"tiny-v{TINY_VERSION}"


def ensure_tiny_model(frames: int = 49) -> Path:
    """Builds and saves the tiny pipeline made for ``frames`` frames once; returns the pipeline folder. A write the
    machine refuses (a full disk, a file-size limit) is raised as its ``OSError``, and no part of the folder is left."""
    root = tiny_cache_dir()
    model_dir = root / ("CogVideoX-tiny-I2V" if frames == 49 else f"CogVideoX-tiny-I2V-{frames}f")
    if not (model_dir / "model_index.json").is_file():
        with atomic_dir(model_dir, overwrite=True) as tmp, as_os_errors(model_dir):
            build_tiny_pipeline(frames).save_pretrained(tmp)
    return model_dir


def build_tiny_pipeline(frames: int = 49):
    """``frames``: the transformer's sample_frames, which size its learned positional table (``tiny-orbit``: 33)."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDPMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(TINY_SEED)
    tokenizer = _build_tiny_tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                 relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0)
    )
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=32,  # 16 noisy-video latent channels + 16 image latent channels, as the 5B I2V model
        out_channels=16,
        time_embed_dim=16,
        text_embed_dim=32,
        num_layers=2,
        sample_width=TINY_SAMPLE_WIDTH,
        sample_height=TINY_SAMPLE_HEIGHT,
        sample_frames=frames,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=226,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=16,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        sample_height=TINY_SAMPLE_HEIGHT * 8,
        sample_width=TINY_SAMPLE_WIDTH * 8,
    )
    scheduler = CogVideoXDPMScheduler(timestep_spacing="trailing", snr_shift_scale=1.0, rescale_betas_zero_snr=True,
                                      beta_schedule="scaled_linear", prediction_type="v_prediction")
    return CogVideoXImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                         transformer=transformer, scheduler=scheduler)


def _build_tiny_tokenizer():
    """A character-level T5 (Unigram) tokenizer: every printable ASCII character is a piece."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation]
    return T5Tokenizer(vocab=pieces, extra_ids=0)
