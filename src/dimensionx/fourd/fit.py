"""Fitting 4D Gaussians to the grid: canonical Gaussians + a HexPlane deformation field, rendered by splats/.

As 4DGaussians (Wu et al.): a coarse stage fits the canonical Gaussians alone to every frame of
every time (a static scene that explains what it can), then the fine stage trains them together
with the deformation field. Each step renders one (time, view) image of the training views;
loss = (1 - l) L1 + l (1 - SSIM) + ``tv_weight`` TV(planes) + ``offset_weight`` mean |position
offset| / extent. The offsets are relative (``offset_reference``), by default to their mean over
the grid's times: the canonical Gaussians are the time-averaged scene, and a static scene leaves
the field nothing to do. Cameras are shared by every time. The field is left out
(``deform=False``) for the canonical-only baseline.

Densification is the 3D stage's (gsplat's ``DefaultStrategy`` through ``SyncFreeDefaultStrategy``)
on the canonical Gaussians: the image-plane gradients of the deformed Gaussians' 2D means reach
each canonical Gaussian through the field, and the field holds no per-Gaussian state, so cloning,
splitting and pruning leave it consistent. No opacity reset (the schedules are short); gsplat
removes Gaussians larger than ``prune_scale3d`` of the scene only after one, so ``prune_large``
(``FourDStrategy``) removes them at every refinement instead: a large floater formed during the
fit then goes, as in a 3D fit after its resets.

A step reads nothing back from the device: the loss (one CUDA graph on CUDA, ``LossAndGradient``)
keeps running sums that are read every ``LOG_EVERY`` iterations, the six splat Adam steps are
``SplatAdam``'s fused ones, the field's Adam is fused on CUDA.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from gsplat.strategy.ops import remove
from tqdm import tqdm

from ..errors import DimensionXError
from ..splats.densify import SyncFreeDefaultStrategy
from ..splats.loss import LossAndGradient
from ..splats.metrics import psnr, ssim
from ..splats.optim import SplatAdam
from ..splats.render import rasterize
from .config import FourDConfig
from .deform import HexPlaneField

log = logging.getLogger(__name__)

CPU_ITERATIONS = 300  # the pure-torch reference renderer: tiny scenes only
BOUNDS_QUANTILE = 0.01  # the field's box spans these quantiles of the canonical means: SfM outliers do not stretch it
MEANS_LR_DECAY = 0.01  # the means' learning rate falls to this fraction over the run (exponentially)
LOG_EVERY = 50  # iterations between reads of the loss (progress bar, non-finite check)


@dataclass
class GridViews:
    """The frames of the grid and their cameras, on the fitting device."""

    images: torch.Tensor  # [M, K, H, W, 3] float in [0, 1]
    times: torch.Tensor  # [M] in [0, 1]
    viewmats: torch.Tensor  # [K, 4, 4] world-to-camera, OpenCV axes
    Ks: torch.Tensor  # [K, 3, 3] px
    train_views: list[int]
    holdout_views: list[int]
    reference: int = 0  # row (time index) of the reference spatial video: the canonical Gaussians are the scene there


@dataclass
class FourDStrategy(SyncFreeDefaultStrategy):
    """``prune_large``: at each refinement also remove Gaussians whose largest axis exceeds ``prune_scale3d``
    x the scene scale; gsplat's ``DefaultStrategy`` (1.5.3) does so only after its first opacity reset,
    which the 4D fit never makes."""

    prune_large: bool = False

    @torch.no_grad()
    def _prune_gs(self, params, optimizers, state, step) -> int:
        if not self.prune_large:
            return super()._prune_gs(params, optimizers, state, step)
        too_big = torch.exp(params["scales"]).max(dim=-1).values > self.prune_scale3d * state["scene_scale"]  # [N]
        is_prune = (torch.sigmoid(params["opacities"].flatten()) < self.prune_opa) | too_big
        n_prune = int(is_prune.sum())
        if n_prune:
            remove(params=params, optimizers=optimizers, state=state, mask=is_prune)
        return n_prune


def split_views(k: int, every: int) -> tuple[list[int], list[int]]:
    """Views 1 + every j are held out (never view 0, the reference's first frame); ``every`` = 0 holds none."""
    holdout = list(range(1, k, every)) if every > 0 else []
    train = [i for i in range(k) if i not in holdout]
    if len(train) < 2:
        raise DimensionXError(f"holdout {every} leaves {len(train)} of {k} views to train on: set a larger holdout (every K-th view) or 0")
    return train, holdout


def resolve_iterations(config: FourDConfig, device: torch.device) -> tuple[int, int]:
    """(total, coarse) iterations for ``device``: ``iterations``, else the video mode's budget on CUDA."""
    if config.iterations is not None:
        total = config.iterations
    elif device.type != "cuda":
        total = CPU_ITERATIONS
    elif config.mode in config.fit_iterations:
        total = config.fit_iterations[config.mode]
    else:
        raise DimensionXError(f"fit_iterations has no budget for --mode {config.mode} ({config.fit_iterations}): "
                              f"add `{config.mode}: N` under fit_iterations in the --config file, or pass --iterations")
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
) -> tuple[torch.Tensor, dict, torch.Tensor | None]:
    """[C, H, W, 3] images of the Gaussians at time ``t``, the renderer's ``info`` and the position offsets [N, 3] (None without a field)."""
    offsets = {} if field is None else field(splats["means"], t)
    moved = {k: splats[k] + offsets[k] if k in offsets else splats[k] for k in ("means", "quats", "scales")}
    sh = torch.cat([splats["sh0"], splats["shN"]], dim=1)  # [N, K, 3]
    sh_degree = int(round(math.sqrt(sh.shape[1]))) - 1
    images, _, info = rasterize(moved["means"], moved["quats"], torch.exp(moved["scales"]), torch.sigmoid(splats["opacities"]),
                                sh, viewmats, Ks, width, height, sh_degree, background)
    return images, info, offsets.get("means")


class Fitter:
    def __init__(self, config: FourDConfig, splats: torch.nn.ParameterDict, views: GridViews, extent: float,
                 device: torch.device, deform: bool = True):
        self.config, self.views, self.device, self.extent = config, views, device, extent
        self.splats = splats.to(device)
        means = self.splats["means"].detach()
        bounds = torch.quantile(means, torch.tensor([BOUNDS_QUANTILE, 1 - BOUNDS_QUANTILE], device=device), dim=0)  # [2, 3]
        references = {"mean": views.times.tolist(), "key": [float(views.times[views.reference])], "none": None}  # OFFSET_REFERENCES
        self.field = HexPlaneField(
            bounds, config.plane_resolution, config.time_resolution or len(views.times), tuple(config.plane_scales),
            config.plane_features, config.mlp_width, references[config.offset_reference]).to(device) if deform else None
        self.background = torch.tensor(config.background, dtype=torch.float32, device=device)
        self.loss = LossAndGradient((1, *views.images.shape[2:]), config.ssim_lambda, device)
        lrs = {"means": config.lr_means * extent, "scales": config.lr_scales, "quats": config.lr_quats,
               "opacities": config.lr_opacities, "sh0": config.lr_colors, "shN": config.lr_colors / 20}
        # One Adam per parameter, as gsplat's strategies expect (they replace parameters and state); SplatAdam steps them.
        self.optimizers = {name: torch.optim.Adam([{"params": self.splats[name], "lr": lr, "name": name}], eps=1e-15)
                           for name, lr in lrs.items()}
        self.adam = SplatAdam(self.optimizers)
        self.means_lr = lrs["means"]
        self.field_optimizer = None if self.field is None else torch.optim.Adam([
            {"params": list(self.field.planes.parameters()), "lr": config.lr_planes * extent},
            {"params": list(self.field.mlp.parameters()) + list(self.field.heads.parameters()), "lr": config.lr_mlp * extent},
        ], fused=True)
        self.iterations, self.coarse_iterations = resolve_iterations(config, device)
        self.strategy, self.strategy_state = self._make_strategy()

    def _make_strategy(self):
        """gsplat's DefaultStrategy over the canonical Gaussians between ``densify_from`` and ``densify_until``."""
        c = self.config
        if not c.densify:
            return None, None
        strategy = FourDStrategy(
            prune_large=c.prune_large, prune_scale3d=c.prune_scale3d, prune_opa=c.prune_opa, grow_grad2d=c.grow_grad2d, grow_scale3d=c.grow_scale3d,
            refine_start_iter=int(c.densify_from * self.iterations), refine_stop_iter=int(c.densify_until * self.iterations),
            refine_every=c.densify_every, reset_every=self.iterations + 1, cap=c.max_gaussians)  # past the end: no opacity reset
        strategy.check_sanity(self.splats, self.optimizers)
        return strategy, strategy.initialize_state(scene_scale=self.extent)

    def render(self, t: float, viewmats: torch.Tensor, Ks: torch.Tensor, deform: bool = True):
        """``render_at`` with this fit's Gaussians: ([C, H, W, 3] images, info, position offsets [N, 3] or None)."""
        H, W = self.views.images.shape[2:4]
        return render_at(self.splats, self.field if deform else None, t, viewmats, Ks, W, H, self.background)

    def train(self, seed: int, progress: bool = True) -> list[float]:
        """Coarse then fine stage; returns the mean loss of every ``LOG_EVERY`` iterations. ``self.trace``
        gets a row about every tenth of the run (iteration, Gaussians, seconds so far, loss), also logged:
        where the time goes as densification grows the count, even where no progress bar is shown."""
        rng = np.random.default_rng(seed)
        v, c = self.views, self.config
        losses = []
        self.trace, start = [], time.perf_counter()
        self.loss.reset_totals()
        bar = tqdm(range(self.iterations), desc="4D fit", unit="it", disable=not progress)
        for step in bar:
            fine = step >= self.coarse_iterations and self.field is not None
            m, k = int(rng.integers(len(v.times))), int(rng.choice(v.train_views))
            image, info, offsets = self.render(float(v.times[m]), v.viewmats[k:k + 1], v.Ks[k:k + 1], deform=fine)
            if self.strategy is not None:
                self.strategy.step_pre_backward(self.splats, self.optimizers, self.strategy_state, step, info)
            _, gradient = self.loss(image.detach(), v.images[m, k][None])
            if fine:
                regulariser = c.tv_weight * self.field.total_variation() + c.offset_weight / self.extent * offsets.abs().sum(dim=-1).mean()
                torch.autograd.backward([image, regulariser], [gradient, None])
                self.field_optimizer.step()
                self.field_optimizer.zero_grad(set_to_none=True)
            else:
                image.backward(gradient)
            self.optimizers["means"].param_groups[0]["lr"] = self.means_lr * MEANS_LR_DECAY ** (step / self.iterations)
            self.adam.step()
            if self.strategy is not None:
                self.strategy.step_post_backward(self.splats, self.optimizers, self.strategy_state, step, info, packed=False)
            if (step + 1) % LOG_EVERY == 0 or step + 1 == self.iterations:
                losses.append(self._read_loss(step))
                bar.set_postfix(loss=f"{losses[-1]:.4f}", gaussians=len(self.splats["means"]))
                if (step + 1) * 10 >= (len(self.trace) + 1) * self.iterations:  # the next tenth is reached
                    row = {"iteration": step + 1, "gaussians": len(self.splats["means"]),
                           "seconds": round(time.perf_counter() - start, 2), "loss": round(losses[-1], 5)}
                    self.trace.append(row)
                    log.info("4D fit: %(iteration)d/%(total)d iterations, %(gaussians)d Gaussians, %(seconds).1f s, loss %(loss).4f",
                             {**row, "total": self.iterations})
        return losses

    def _read_loss(self, step: int) -> float:
        """Mean photometric loss since the last read (the one host sync, every ``LOG_EVERY`` steps); raises if any was not finite."""
        if int(self.loss.non_finite):
            raise DimensionXError(f"the 4D fit diverged by iteration {step + 1} (NaN or infinite loss): "
                                  "lower lr_means or lr_planes in a --config file")
        if len(self.splats["means"]) == 0:
            raise DimensionXError(f"every Gaussian was pruned by iteration {step + 1}: lower prune_opa, or set densify: false")
        loss = float(self.loss.loss_sum) / (step % LOG_EVERY + 1)
        self.loss.reset_totals()
        return loss

    @torch.no_grad()
    def evaluate(self) -> dict[str, list[float]]:
        """PSNR (dB) and SSIM of the held-out views at every time, each held-out view's PSNR averaged over
        times (one bad view, e.g. a floater in front of its camera, shows there), the mean deformation per
        time and the motion (world units)."""
        v = self.views
        ids = v.holdout_views
        out = {"psnr": [], "ssim": [], "deformation": []}
        per_view = []
        for m, t in enumerate(v.times.tolist()):
            if ids:
                image = self.render(t, v.viewmats[ids], v.Ks[ids])[0]
                out["psnr"].append(psnr(image, v.images[m, ids]))
                out["ssim"].append(ssim(image, v.images[m, ids]))
                per_view.append([psnr(image[i], v.images[m, ids[i]]) for i in range(len(ids))])
            out["deformation"].append(self.deformation(t))
        out["psnr_per_view"] = np.mean(per_view, axis=0).tolist() if per_view else []
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
