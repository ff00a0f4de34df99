"""The training loss, (1 - l) L1 + l (1 - SSIM), and its gradient with respect to the rendered image.

SSIM is pytorch-msssim's (11 px Gaussian window, sigma 1.5, valid pixels, K = (0.01, 0.03)),
with its five Gaussian filterings (of x, y, x², y², xy) done as one grouped convolution per
image axis instead of ten: same arithmetic, a third of the kernels (``batched_ssim``; the
held-out metric stays pytorch-msssim's own call). The image size never changes during
training, so on CUDA the loss and its backward pass are captured once as a CUDA graph and
replayed each step; the splats' gradients then follow from ``colors.backward(gradient)``. The
graph also keeps the running sum of finite losses and the count of non-finite ones, so the
training loop reads them only when it reports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .metrics import ssim_window

SSIM_K = (0.01, 0.03)  # pytorch-msssim's constants, for images in [0, 1]


def photometric_loss(
    image: torch.Tensor,  # [1, H, W, 3] in [0, 1]
    target: torch.Tensor,  # [1, H, W, 3] in [0, 1]
    ssim_lambda: float,
    window: torch.Tensor,  # [3, 1, 1, 11] SSIM Gaussian window
) -> torch.Tensor:
    """Scalar loss of [1, H, W, 3] images in [0, 1]."""
    l1 = (image - target).abs().mean()
    return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - batched_ssim(image, target, window))


def batched_ssim(
    image: torch.Tensor,  # [B, H, W, 3] in [0, 1]
    target: torch.Tensor,  # [B, H, W, 3] in [0, 1]
    window: torch.Tensor,  # [3, 1, 1, 11] SSIM Gaussian window
) -> torch.Tensor:
    """Mean SSIM, as ``pytorch_msssim.ssim(..., data_range=1, win=window)``, filtering x, y, x², y², xy at once."""
    x, y = image.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)  # [B, 3, H, W]
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [B, 15, H, W]
    win = window.repeat(5, 1, 1, 1)  # [15, 1, 1, 11]
    blurred = F.conv2d(F.conv2d(stack, win.transpose(2, 3), groups=15), win, groups=15)  # valid, along H then W
    mu1, mu2, xx, yy, xy = blurred.chunk(5, dim=1)  # [B, 3, H - 10, W - 10] each
    c1, c2 = SSIM_K[0] ** 2, SSIM_K[1] ** 2
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    cs = (2 * (xy - mu1_mu2) + c2) / ((xx - mu1_sq) + (yy - mu2_sq) + c2)
    return (((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs).mean()


class LossAndGradient:
    """``(image, target) -> (loss, d loss / d image)`` for [1, H, W, 3] images, as one CUDA graph on CUDA.

    The returned tensors are reused by the next call: consume them first. ``loss_sum`` and
    ``non_finite`` accumulate over calls until ``reset_totals()``.
    """

    def __init__(self, shape: tuple[int, ...], ssim_lambda: float, device: torch.device, cuda_graph: bool = True):
        self.image = torch.zeros(shape, device=device, requires_grad=True)
        self.target = torch.zeros(shape, device=device)
        self.ssim_lambda = ssim_lambda
        self.window = ssim_window(device)
        self.loss_sum = torch.zeros((), device=device)  # finite losses since the last reset
        self.non_finite = torch.zeros((), device=device)  # NaN or infinite losses since the last reset
        self.graph = None
        if device.type == "cuda" and cuda_graph:
            self._capture()

    def _evaluate(self) -> torch.Tensor:
        self.image.grad = None
        loss = photometric_loss(self.image, self.target, self.ssim_lambda, self.window)
        loss.backward()
        loss = loss.detach()
        finite = torch.isfinite(loss)
        self.loss_sum += torch.where(finite, loss, 0.0)
        self.non_finite += ~finite
        return loss

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: cuDNN picks its kernels outside the capture
            for _ in range(3):
                self._evaluate()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.image.grad = None
        with torch.cuda.graph(self.graph):
            self.loss = self._evaluate()
        self.reset_totals()

    def reset_totals(self) -> None:
        self.loss_sum.zero_()
        self.non_finite.zero_()

    def __call__(self, image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            self.image.copy_(image)
            self.target.copy_(target)
        if self.graph is None:
            return self._evaluate(), self.image.grad
        self.graph.replay()
        return self.loss, self.image.grad
