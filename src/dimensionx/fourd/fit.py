"""Fitting 4D Gaussians to the grid: canonical Gaussians + a HexPlane deformation field, rendered by splats/.

As 4DGaussians (Wu et al.): a coarse stage fits the canonical Gaussians alone to every frame of
every time (a static scene that explains what it can), then the fine stage trains them together
with the deformation field. Each step renders one (time, view) image of the training views;
loss = (1 - l) L1 + l (1 - SSIM) + ``tv_weight`` TV(planes). Cameras are shared by every time.
The field is left out (``deform=False``) for the canonical-only baseline.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..errors import DimensionXError
from ..splats.loss import photometric_loss
from ..splats.metrics import psnr, ssim, ssim_window
from ..splats.render import rasterize
from .config import FourDConfig
from .deform import HexPlaneField, deformed

log = logging.getLogger(__name__)

GPU_ITERATIONS = 6000
CPU_ITERATIONS = 300  # the pure-torch reference renderer: tiny scenes only
BOUNDS_QUANTILE = 0.01  # the field's box spans these quantiles of the canonical means: SfM outliers do not stretch it
MEANS_LR_DECAY = 0.01  # the means' learning rate falls to this fraction over the run (exponentially)


@dataclass
class GridViews:
    """The frames of the grid and their cameras, on the fitting device."""

    images: torch.Tensor  # [M, K, H, W, 3] float in [0, 1]
    times: torch.Tensor  # [M] in [0, 1]
    viewmats: torch.Tensor  # [K, 4, 4] world-to-camera, OpenCV axes
    Ks: torch.Tensor  # [K, 3, 3] px
    train_views: list[int]
    holdout_views: list[int]


def split_views(k: int, every: int) -> tuple[list[int], list[int]]:
    """Views 1 + every j are held out (never view 0, the reference's first frame); ``every`` = 0 holds none."""
    holdout = list(range(1, k, every)) if every > 0 else []
    train = [i for i in range(k) if i not in holdout]
    if len(train) < 2:
        raise DimensionXError(f"--holdout {every} leaves {len(train)} of {k} views to train on: pass a larger --holdout or 0")
    return train, holdout


def scene_extent(viewmats: np.ndarray) -> float:
    """1.1x the largest distance of a camera centre from their centroid, world units (1 if they coincide)."""
    centers = -np.einsum("cji,cj->ci", viewmats[:, :3, :3], viewmats[:, :3, 3])
    spread = float(np.linalg.norm(centers - centers.mean(axis=0), axis=1).max())
    return 1.1 * spread if spread > 0 else 1.0


def resolve_iterations(config: FourDConfig, device: torch.device) -> tuple[int, int]:
    """(total, coarse) iterations for ``device``."""
    total = config.iterations if config.iterations is not None else (GPU_ITERATIONS if device.type == "cuda" else CPU_ITERATIONS)
    coarse = config.coarse_iterations if config.coarse_iterations is not None else total // 6
    return total, min(coarse, total)


def render_at(
    splats,  # canonical parameters: means [N, 3], quats [N, 4], scales [N, 3] log, opacities [N] logit, sh0 [N, 1, 3], shN [N, K-1, 3]
    field: HexPlaneField | None,  # None: the canonical Gaussians
    t: float,  # time in [0, 1]
    viewmats: torch.Tensor,  # [C, 4, 4] world-to-camera
    Ks: torch.Tensor,  # [C, 3, 3] px
    width: int,
    height: int,
    background: torch.Tensor,  # [3] RGB in [0, 1]
) -> torch.Tensor:
    """[C, H, W, 3] images of the Gaussians at time ``t``."""
    moved = deformed({k: splats[k] for k in ("means", "quats", "scales")}, field, t)
    sh = torch.cat([splats["sh0"], splats["shN"]], dim=1)  # [N, K, 3]
    sh_degree = int(round(math.sqrt(sh.shape[1]))) - 1
    images, _, _ = rasterize(moved["means"], moved["quats"], torch.exp(moved["scales"]), torch.sigmoid(splats["opacities"]),
                             sh, viewmats, Ks, width, height, sh_degree, background)
    return images


class Fitter:
    def __init__(self, config: FourDConfig, splats: torch.nn.ParameterDict, views: GridViews, extent: float,
                 device: torch.device, deform: bool = True):
        self.config, self.views, self.device = config, views, device
        self.splats = splats.to(device)
        means = self.splats["means"].detach()
        bounds = torch.quantile(means, torch.tensor([BOUNDS_QUANTILE, 1 - BOUNDS_QUANTILE], device=device), dim=0)  # [2, 3]
        self.field = HexPlaneField(
            bounds, config.plane_resolution, config.time_resolution or len(views.times), tuple(config.plane_scales),
            config.plane_features, config.mlp_width).to(device) if deform else None
        self.background = torch.tensor(config.background, dtype=torch.float32, device=device)
        self.window = ssim_window(device)
        lrs = {"means": config.lr_means * extent, "scales": config.lr_scales, "quats": config.lr_quats,
               "opacities": config.lr_opacities, "sh0": config.lr_colors, "shN": config.lr_colors / 20}
        self.optimizer = torch.optim.Adam([{"params": [self.splats[k]], "lr": lr, "name": k} for k, lr in lrs.items()], eps=1e-15)
        self.field_optimizer = None if self.field is None else torch.optim.Adam([
            {"params": list(self.field.planes.parameters()), "lr": config.lr_planes * extent},
            {"params": list(self.field.mlp.parameters()) + list(self.field.heads.parameters()), "lr": config.lr_mlp * extent},
        ])
        self.iterations, self.coarse_iterations = resolve_iterations(config, device)

    def render(self, t: float, viewmats: torch.Tensor, Ks: torch.Tensor, deform: bool = True) -> torch.Tensor:
        """[C, H, W, 3] images at time ``t`` from cameras ``viewmats`` [C, 4, 4], ``Ks`` [C, 3, 3]."""
        H, W = self.views.images.shape[2:4]
        return render_at(self.splats, self.field if deform else None, t, viewmats, Ks, W, H, self.background)

    def train(self, seed: int, progress: bool = True) -> list[float]:
        """Coarse then fine stage; returns the loss of every iteration."""
        rng = np.random.default_rng(seed)
        gamma = MEANS_LR_DECAY ** (1.0 / max(1, self.iterations))
        losses = []
        for step in tqdm(range(self.iterations), desc="4D fit", unit="it", disable=not progress):
            fine = step >= self.coarse_iterations and self.field is not None
            m, k = int(rng.integers(len(self.views.times))), int(rng.choice(self.views.train_views))
            image = self.render(float(self.views.times[m]), self.views.viewmats[k:k + 1], self.views.Ks[k:k + 1], deform=fine)
            loss = photometric_loss(image, self.views.images[m, k][None], self.config.ssim_lambda, self.window)
            if fine:
                loss = loss + self.config.tv_weight * self.field.total_variation()
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if fine:
                self.field_optimizer.step()
                self.field_optimizer.zero_grad(set_to_none=True)
            self.optimizer.param_groups[0]["lr"] *= gamma
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                raise DimensionXError(f"the 4D fit diverged at iteration {step} (loss {losses[-1]}): lower --lr-means or the plane learning rate")
        return losses

    @torch.no_grad()
    def evaluate(self) -> dict[str, list[float]]:
        """PSNR (dB) and SSIM of the held-out views at every time, the mean deformation per time and the motion (world units)."""
        v = self.views
        out = {"psnr": [], "ssim": [], "deformation": []}
        for m, t in enumerate(v.times.tolist()):
            if v.holdout_views:
                ids = v.holdout_views
                image = self.render(t, v.viewmats[ids], v.Ks[ids])
                out["psnr"].append(psnr(image, v.images[m, ids]))
                out["ssim"].append(ssim(image, v.images[m, ids]))
            out["deformation"].append(self.deformation(t))
        out["motion"] = self.motion()
        return out

    @torch.no_grad()
    def motion(self) -> float:
        """Mean over Gaussians of the spread (std over the grid's times) of their offsets, world units: what
        moves in time; a constant offset (a shift of the canonical copy) does not count."""
        if self.field is None:
            return 0.0
        offsets = torch.stack([self.field(self.splats["means"], t)["means"] for t in self.views.times.tolist()])  # [M, N, 3]
        return float(offsets.std(dim=0).norm(dim=-1).mean())

    @torch.no_grad()
    def deformation(self, t: float) -> float:
        """Mean distance (world units) of the Gaussians at time ``t`` from their canonical positions."""
        if self.field is None:
            return 0.0
        return float(self.field(self.splats["means"], t)["means"].norm(dim=1).mean())
