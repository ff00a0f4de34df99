"""DimensionX: create 3D and 4D scenes from a single image with decoupled video diffusion.

The package's folders are the paper's stages, standing on shared floors (a stage imports only
the floors below it, or another stage's public entry function):

- ``cli``: the ``dimensionx`` dispatcher; each stage registers its commands;
- ``scenes``: chaining across stages, image -> video (or orbit) -> 3D (``scene3d``);
- ``app``: the Gradio web app; calls stage entry functions, holds no pipeline logic (``app``);
- ``orbit``: the 145-frame 360-degree orbit model (``orbit``);
- ``fourd``: the 4D stage, ST-Director video grid and 4D Gaussians (``scene4d``, ``render4d``);
- ``train``: director LoRA training and the dataset builder (``train``, ``make-dataset``);
- ``recon``: video -> cameras (SfM) -> 3D Gaussian splatting scene (``recon``);
- ``video``: the CogVideoX runtime every generating stage shares (``video``, ``motions``);
- ``directors``: the S-/T-Director LoRAs (registry, files, fuse or switch) and their camera paths;
- ``models``: base weights (hub, local, tiny random models) and SAT -> diffusers conversion (``convert-sat``);
- ``splats``: the Gaussian-splat mechanism shared by 3D and 4D;
- ``config``, ``errors``, ``device``, ``interrupts``: stage configs from YAML and sidecars; the error
  type; ``--device``; Ctrl-C and SIGTERM;
- ``outputs``, ``atomic``, ``videofiles``, ``imagefiles``: where a command may write (the ``--overwrite``
  rules, output markers); atomic files and their leftovers; mp4 writing and frame reading; photo decoding.
"""

__version__ = "0.1.0"

from .errors import DimensionXError

__all__ = ["DimensionXError", "__version__"]
