"""DimensionX: create 3D and 4D scenes from a single image with decoupled video diffusion.

The package's folders are the paper's stages:

- ``directors``: camera-controlled video (CogVideoX-5B-I2V + S-/T-Director LoRAs);
- ``recon``: video -> cameras (SfM) -> 3D Gaussian splatting scene.
"""

__version__ = "0.1.0"

from .errors import DimensionXError

__all__ = ["DimensionXError", "__version__"]
