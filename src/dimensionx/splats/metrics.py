"""Image quality of held-out frames: PSNR and SSIM (pytorch-msssim, 11 px Gaussian window, sigma 1.5).

LPIPS is not computed: it needs a network's pretrained weights (the ``lpips`` package's
AlexNet/VGG), which this project does not download; metrics.json says so.
"""

from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim

from ..errors import DimensionXError

LPIPS_NOTE = "LPIPS not computed: it needs pretrained AlexNet/VGG weights that this project does not download"


def check_holdout(every: int, name: str) -> None:
    """The held-out images of a 3D or 4D fit: every ``every``-th frame (recon) or view (scene4d) is only evaluated,
    0 holds none out; 1 (all of them) and negative values are refused. ``name``: the setting as the user typed it."""
    if every < 0 or every == 1:
        raise DimensionXError(f"{name} {every}: pass K >= 2 to hold out every K-th frame or view for evaluation, or 0 "
                              "to hold out none (1 would hold out all of them)")


def psnr(image: torch.Tensor, target: torch.Tensor) -> float:
    """dB between [..., H, W, 3] images in [0, 1]."""
    mse = torch.mean((image.clamp(0, 1) - target) ** 2).clamp_min(1e-10)
    return float(-10.0 * torch.log10(mse))


def ssim(image: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM between [C, H, W, 3] images in [0, 1]."""
    return float(ssim_loss_term(image.clamp(0, 1), target, ssim_window(image.device)))


def ssim_window(device: torch.device, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """[3, 1, 1, size] normalised Gaussian (sigma in px), made once on ``device``: pytorch-msssim
    would otherwise build it on the CPU and copy it to the GPU at every call, a sync per step."""
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).reshape(1, 1, 1, size).repeat(3, 1, 1, 1)


def ssim_loss_term(image: torch.Tensor, target: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Differentiable mean SSIM of [C, H, W, 3] images in [0, 1] (the training loss uses 1 - this)."""
    return _ssim(image.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2), data_range=1.0, size_average=True,
                 win=window)
