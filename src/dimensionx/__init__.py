"""DimensionX: create 3D and 4D scenes from a single image with decoupled video diffusion.

The package's folders are the paper's stages:

- ``video``: the CogVideoX runtime every generating stage shares (the ``video`` command);
- ``directors``: the S-/T-Director LoRAs (registry, files, fuse or switch);
- ``models``: base weights (hub, local, tiny random models);
- ``splats``: the Gaussian-splat mechanism shared by 3D and 4D;
- ``recon``: video -> cameras (SfM) -> 3D Gaussian splatting scene;
- ``scenes``: image -> video -> 3D chaining (``scene3d``).
"""

__version__ = "0.1.0"

from .errors import DimensionXError

__all__ = ["DimensionXError", "__version__"]
