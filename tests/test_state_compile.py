"""Compiling the video model's regions changes nothing process-wide: no environment variable, no method
assigned over; torch's compile artifacts persist in the user's cache folder and a second process loads them.

Runs torch.compile (Inductor, C++ on the CPU) on a tiny block and a GroupNorm, each in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    from types import SimpleNamespace

    import torch
    from torch._dynamo.utils import counters

    from dimensionx.video.modes import CompiledGroupNorm, compile_regions


    class Block(torch.nn.Module):  # a transformer block's stand-in
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 8)

        def forward(self, x):
            return torch.nn.functional.gelu(self.linear(x))


    class Decoder(torch.nn.Module):  # the VAE decoder's stand-in: a GroupNorm inside
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.GroupNorm(2, 4)

        def forward(self, z):
            return self.norm(z) * 2


    torch.manual_seed(0)
    transformer = SimpleNamespace(transformer_blocks=torch.nn.ModuleList([Block(), Block()]))
    vae = SimpleNamespace(decoder=Decoder())
    x, z = torch.randn(2, 8), torch.randn(1, 4, 3, 5)
    with torch.no_grad():
        eager = [block(x) for block in transformer.transformer_blocks] + [vae.decoder(z)]
    norm_weight = vae.decoder.norm.weight
    torch.compile(torch.neg)(x)  # torch's own compile sets its variables (e.g. _TORCHINDUCTOR_PYOBJECT_TENSOR_DATA_PTR)
    counters.clear()
    env = dict(os.environ)
    notes = compile_regions(transformer, vae, Path(sys.argv[1]))
    with torch.no_grad():
        compiled = [block(x) for block in transformer.transformer_blocks] + [vae.decoder(z)]
    saved = torch.compiler.save_cache_artifacts()
    print(json.dumps({
        "env_unchanged": dict(os.environ) == env, "env_diff": sorted(set(os.environ.items()) ^ set(env.items())),
        "forward_attributes": [name for name, m in [*transformer.transformer_blocks.named_modules(), *vae.decoder.named_modules()]
                               if "forward" in vars(m)],
        "norm": type(vae.decoder.norm).__name__, "same_weight": vae.decoder.norm.weight is norm_weight,
        "close": all(torch.allclose(a, b, atol=1e-5) for a, b in zip(eager, compiled)),
        "graphs": len(saved[1].inductor_artifacts) if saved else 0,
        "cache_hits": counters["inductor"]["fxgraph_cache_hit"], "notes": notes,
    }))
''')


def run_child(tmp_path, cache_file, inductor_dir):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(inductor_dir)}  # a folder the user chose: left as it is
    result = subprocess.run([sys.executable, str(script), str(cache_file)], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_compiled_regions_leave_the_process_alone_and_a_second_process_starts_warm(tmp_path):
    cache_file = tmp_path / "cache" / "cpu-torch.megacache"
    first = run_child(tmp_path, cache_file, tmp_path / "inductor-first")
    assert first["env_unchanged"], first["env_diff"]
    assert first["forward_attributes"] == []
    assert first["norm"] == "CompiledGroupNorm" and first["same_weight"] and first["close"]
    # torch.neg's, the block's (one for both blocks) and the GroupNorm's: each region really compiled
    assert first["graphs"] == 3, first
    assert first["notes"][0] == f"compile artifacts: none yet, saved to {cache_file} after the first video"
    assert cache_file.is_file() and not [p for p in cache_file.parent.iterdir() if p != cache_file]  # no temporary left

    second = run_child(tmp_path, cache_file, tmp_path / "inductor-second")  # torch's own cache folder empty
    assert second["notes"][0].startswith("compile artifacts: ") and second["notes"][0].endswith(f" loaded from {cache_file}")
    assert second["cache_hits"] == 2 and second["env_unchanged"] and second["close"]
