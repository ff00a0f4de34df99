"""Drop-in for the original DimensionX ``inference.py``: same flags, plus ours.

    python inference.py --lora_path ./orbit_left_lora_weights.safetensors --image_path photo.jpg --prompt "..."

``--lora_path`` is one director LoRA file: an official one (``orbit_left_lora_weights.safetensors`` is
the original README's name for the ``orbit_left`` director of ``ShuoChen20/DimensionX_4_orbit_camera_lora``;
``hf download ShuoChen20/DimensionX_4_orbit_camera_lora --local-dir loras`` fetches it, and
``dimensionx motions`` prints where each director's file is), or your own
``runs/NAME/pytorch_lora_weights.safetensors`` from ``dimensionx train``.
Every flag of ``dimensionx video`` is accepted too (``--model tiny``, ``--seed``, ``--out``...).
The original wrote ``output.mp4`` with 50 steps, guidance 6 and dynamic CFG; so does this.
"""

import sys

from dimensionx.cli import main

ORIGINAL_FLAGS = {"--lora_path": "--lora", "--image_path": None}
DEFAULT_PROMPT = (
    "An astronaut hatching from an egg, on the surface of the moon, the darkness and depth of space realised "
    "in the background. High quality, ultrarealistic detail and breath-taking movie-like camera shot."
)


def translate(argv: list[str]) -> list[str]:
    image, rest, args = None, [], iter(argv)
    for arg in args:
        flag, eq, value = arg.partition("=")
        if flag == "--image_path":
            image = value if eq else next(args)
        elif flag == "--lora_path":
            rest += ["--lora", value if eq else next(args)]
        else:
            rest.append(arg)
    if "--prompt" not in rest and not any(a.startswith("--prompt=") for a in rest):
        rest += ["--prompt", DEFAULT_PROMPT]
    if "--out" not in rest and not any(a.startswith("--out=") for a in rest):
        rest += ["--out", "output.mp4"]
    return ["video"] + ([image] if image else []) + rest


if __name__ == "__main__":
    sys.exit(main(translate(sys.argv[1:])))
