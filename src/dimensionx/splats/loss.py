"""The training loss, (1 - l) L1 + l (1 - SSIM), and its gradient with respect to the rendered image.

The loss is about a hundred small kernels (SSIM's Gaussian filters and their backward pass)
whose launches cost more CPU time than the GPU spends on them. The image size never changes
during training, so on CUDA the loss and its backward pass are captured once as a CUDA graph and
replayed each step; the splats' gradients then follow from ``colors.backward(gradient)``. The
graph also keeps the running sum of finite losses and the count of non-finite ones, so the
training loop reads them only when it reports.
"""

from __future__ import annotations

import torch

from .metrics import ssim_loss_term, ssim_window


def photometric_loss(
    image: torch.Tensor,  # [1, H, W, 3] in [0, 1]
    target: torch.Tensor,  # [1, H, W, 3] in [0, 1]
    ssim_lambda: float,
    window: torch.Tensor,  # [3, 1, 1, 11] SSIM Gaussian window
) -> torch.Tensor:
    """Scalar loss of [1, H, W, 3] images in [0, 1]."""
    l1 = (image - target).abs().mean()
    return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - ssim_loss_term(image, target, window))


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
