"""Fitting 3D Gaussians to frames with known cameras: one runner with ``train()``, ``eval()``, ``render_traj()``.

As in gsplat's trainer: one Adam per parameter, the means' learning rate scaled by the scene
size and decayed 100x, SH degree raised every ``sh_degree_interval`` iterations, gsplat's
``DefaultStrategy`` (clone / split / prune / opacity reset) for densification. The strategy
only reads the ``info`` dict of the renderer, so it runs unchanged with the CPU reference
renderer too; the short CPU schedule (300 iterations) simply ends before ``refine_start_iter``.

A step on CUDA is bound by the CPU's work of issuing some hundred small kernels, not by the
GPU, so the loop avoids what makes the CPU wait for the GPU or spend Python time per step:
the renderer has one host sync (gsplat's tile-intersection count), the strategy gathers its
statistics with dense tensor ops (``SyncFreeDefaultStrategy``), the six Adam steps run through
``SplatAdam`` and the loss is one CUDA graph (``LossAndGradient``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from gsplat.strategy import MCMCStrategy
from tqdm import tqdm

from ..errors import DimensionXError
from .config import ReconConfig
from .frames import DUPLICATE_CHANGE
from ..splats.densify import SyncFreeDefaultStrategy
from ..splats.loss import LossAndGradient
from ..splats.metrics import psnr, ssim
from ..splats.optim import SplatAdam
from ..splats.render import rasterize

log = logging.getLogger(__name__)

LOG_EVERY = 50  # iterations between progress-bar updates and non-finite-loss checks


@dataclass
class Scene:
    """Frames and cameras on the training device."""

    images: torch.Tensor  # [C, H, W, 3] float in [0, 1]
    viewmats: torch.Tensor  # [C, 4, 4] world-to-camera
    Ks: torch.Tensor  # [C, 3, 3] px
    train_ids: list[int]  # cameras trained on
    holdout_ids: list[int]  # cameras only evaluated

    @property
    def width(self) -> int:
        return self.images.shape[2]

    @property
    def height(self) -> int:
        return self.images.shape[1]


def split_holdout(n: int, every: int, thumbs: torch.Tensor | None = None) -> tuple[list[int], list[int]]:
    """Every ``every``-th camera (0, every, 2 every, ...) is held out; ``every`` = 0 holds none out. With ``thumbs``
    ([n, D], the frames' :func:`~.frames.thumbnails`), a frame that repeats a held-out one (a video showing each
    frame twice, a pause: a change of at most ``DUPLICATE_CHANGE``) is not trained on either: trained on, the
    twin would make the held-out score a training score."""
    holdout = list(range(0, n, every)) if every > 0 else []
    train = [i for i in range(n) if i not in set(holdout)]
    if thumbs is not None and holdout and train:
        change = (thumbs[train][:, None] - thumbs[holdout][None]).abs().mean(dim=2)  # [train, holdout]
        twins = (change <= DUPLICATE_CHANGE).any(dim=1).tolist()
        if any(twins):
            log.info("%d frame(s) repeating a held-out frame are not trained on", sum(twins))
        train = [i for i, twin in zip(train, twins) if not twin]
    if len(train) < 2:
        raise DimensionXError(
            f"--holdout {every} leaves {len(train)} of {n} registered frames to train on: "
            "pass a larger --holdout (or 0 to evaluate on no frame), or use more --frames"
        )
    return train, holdout


def rigid_inverse(m: torch.Tensor) -> torch.Tensor:
    """[4, 4] rigid transform -> its inverse [R^T, -R^T t]; unlike ``torch.linalg.inv`` it never waits
    for the GPU (no error check)."""
    out = torch.zeros_like(m)
    out[:3, :3] = m[:3, :3].T
    out[:3, 3] = -m[:3, :3].T @ m[:3, 3]
    out[3, 3] = 1.0
    return out


class Runner:
    def __init__(self, config: ReconConfig, splats: torch.nn.ParameterDict, scene: Scene, scale: float,
                 device: torch.device):
        self.config = config
        self.device = device
        self.scene = scene
        self.scale = scale
        self.iterations = config.iterations
        self.splats = splats.to(device)
        self.background = torch.tensor(config.background, dtype=torch.float32, device=device)
        self.loss = LossAndGradient((1, scene.height, scene.width, 3), config.ssim_lambda, device,
                                    cuda_graph=config.loss_cuda_graph)
        lrs = {"means": config.lr_means * scale, "scales": config.lr_scales, "quats": config.lr_quats,
               "opacities": config.lr_opacities, "sh0": config.lr_sh0, "shN": config.lr_shN}
        # One Adam per parameter, as gsplat's strategies expect; they hold the state, SplatAdam steps them.
        self.optimizers = {
            name: torch.optim.Adam([{"params": self.splats[name], "lr": lr, "name": name}], eps=1e-15)
            for name, lr in lrs.items()
        }
        self.adam = SplatAdam(self.optimizers)
        self.means_lr = lrs["means"]  # decays to 1% over the run
        self.strategy, self.strategy_state = self._make_strategy()
        # A pose correction (rotation vector, translation) per training camera, applied camera-to-world.
        self.pose_deltas = torch.nn.Parameter(torch.zeros(len(scene.train_ids), 6, device=device))
        self.pose_optimizer = torch.optim.Adam([self.pose_deltas], lr=config.pose_lr, weight_decay=config.pose_reg)
        # Per training frame, an affine colour change [3, 4] (added to the identity; exposure, white balance)
        # applied to its render: generated frames drift in exposure and colour, which the splats then need not bake
        # in. Held-out frames and renders use none (gsplat's trainer evaluates its appearance module likewise).
        self.colour_deltas = torch.nn.Parameter(torch.zeros(len(scene.train_ids), 3, 4, device=device))
        self.colour_optimizer = torch.optim.Adam([self.colour_deltas], lr=config.appearance_lr,
                                                 weight_decay=config.appearance_reg)
        self.losses: list[float] = []

    def _make_strategy(self):
        if not self.config.densify:
            return None, None
        c = self.config
        if c.strategy == "mcmc":
            strategy = MCMCStrategy(cap_max=c.mcmc_cap, noise_lr=c.mcmc_noise_lr, refine_start_iter=c.refine_start_iter,
                                    refine_stop_iter=c.refine_stop_iter, refine_every=c.refine_every,
                                    min_opacity=c.prune_opa)
            strategy.check_sanity(self.splats, self.optimizers)
            return strategy, strategy.initialize_state()
        if c.strategy != "default":
            raise DimensionXError(f"strategy {c.strategy!r} is unknown: use 'default' or 'mcmc'")
        strategy = SyncFreeDefaultStrategy(
            prune_opa=c.prune_opa, grow_grad2d=c.grow_grad2d, grow_scale3d=c.grow_scale3d,
            refine_start_iter=c.refine_start_iter, refine_stop_iter=c.refine_stop_iter, reset_every=c.reset_every,
            refine_every=c.refine_every)
        strategy.check_sanity(self.splats, self.optimizers)
        return strategy, strategy.initialize_state(scene_scale=self.scale)

    def render(self, viewmats: torch.Tensor, Ks: torch.Tensor, sh_degree: int):
        """[C, 4, 4], [C, 3, 3] -> colours [C, H, W, 3], alphas [C, H, W, 1], info."""
        s = self.splats
        return rasterize(s["means"], s["quats"], torch.exp(s["scales"]), torch.sigmoid(s["opacities"]),
                         torch.cat([s["sh0"], s["shN"]], dim=1), viewmats, Ks, self.scene.width,
                         self.scene.height, sh_degree, self.background, rasterize_mode=self.config.rasterize_mode)

    def train_viewmat(self, slot: int) -> torch.Tensor:
        """[1, 4, 4] world-to-camera of training camera ``slot``, with its pose correction if refining."""
        viewmat = self.scene.viewmats[self.scene.train_ids[slot]][None]
        if not self.config.refine_cameras:
            return viewmat
        twist = torch.zeros(4, 4, device=self.device)
        w, t = self.pose_deltas[slot, :3], self.pose_deltas[slot, 3:]
        zero = torch.zeros((), device=self.device)
        twist[:3, :3] = torch.stack([zero, -w[2], w[1], w[2], zero, -w[0], -w[1], w[0], zero]).reshape(3, 3)
        twist[:3, 3] = t
        correction = torch.linalg.matrix_exp(twist)  # camera-to-world correction, SE(3)
        return rigid_inverse(correction)[None] @ viewmat

    def train(self) -> None:
        """Runs ``self.iterations`` steps of loss = (1 - l) L1 + l (1 - SSIM) on one training frame each."""
        c = self.config
        generator = torch.Generator().manual_seed(c.seed)
        order = torch.randperm(len(self.scene.train_ids), generator=generator)
        self.loss.reset_totals()
        bar = tqdm(range(self.iterations), desc="gaussians", disable=not c.progress, unit="it")
        for step in bar:
            slot = int(order[step % len(order)])
            if step % len(order) == len(order) - 1:
                order = torch.randperm(len(order), generator=generator)
            gt = self.scene.images[self.scene.train_ids[slot]][None]  # [1, H, W, 3]
            sh_degree = min(step // c.sh_degree_interval, c.sh_degree)
            colors, _, info = self.render(self.train_viewmat(slot), self.scene.Ks[self.scene.train_ids[slot]][None],
                                          sh_degree)
            if c.appearance:
                colors = self.with_appearance(colors, slot)
            mcmc = isinstance(self.strategy, MCMCStrategy)
            if self.strategy is not None and not mcmc:
                self.strategy.step_pre_backward(self.splats, self.optimizers, self.strategy_state, step, info)
            _, gradient = self.loss(colors.detach(), gt)
            colors.backward(gradient)
            if mcmc:
                self._add_mcmc_regularisers()
            self._drop_non_finite(info)
            means_lr = self.means_lr * 0.01 ** (step / self.iterations)
            self.optimizers["means"].param_groups[0]["lr"] = means_lr
            self.adam.step()
            if c.refine_cameras:
                self.pose_optimizer.step()
                self.pose_optimizer.zero_grad(set_to_none=True)
            if c.appearance:
                self.colour_optimizer.step()
                self.colour_optimizer.zero_grad(set_to_none=True)
            if mcmc:
                self.strategy.step_post_backward(self.splats, self.optimizers, self.strategy_state, step, info,
                                                 lr=means_lr)
            elif self.strategy is not None:
                self.strategy.step_post_backward(self.splats, self.optimizers, self.strategy_state, step, info,
                                                 packed=False)
            if (step + 1) % LOG_EVERY == 0 or step + 1 == self.iterations:
                self._check(self.loss.non_finite, step)
                self.losses.append(float(self.loss.loss_sum) / max(1, (step % LOG_EVERY) + 1))
                bar.set_postfix(loss=f"{self.losses[-1]:.4f}", splats=len(self.splats["means"]))
                self.loss.reset_totals()

    def with_appearance(self, colors: torch.Tensor, slot: int) -> torch.Tensor:
        """[1, H, W, 3] render of training camera ``slot`` -> the same with that frame's colour change."""
        change = self.colour_deltas[slot]  # [3, 4]
        return colors @ (torch.eye(3, device=self.device) + change[:, :3]).T + change[:, 3]

    @torch.no_grad()
    def _add_mcmc_regularisers(self) -> None:
        """Adds the gradients of ``opacity_reg * mean(opacity) + scale_reg * mean(scale)`` (gsplat's MCMC
        trainer) to the splats' gradients, in closed form: no extra autograd graph."""
        opacities, scales = self.splats["opacities"], self.splats["scales"]
        sigmoid = torch.sigmoid(opacities)
        opacities.grad.add_(sigmoid * (1 - sigmoid), alpha=self.config.opacity_reg / opacities.numel())
        scales.grad.add_(torch.exp(scales), alpha=self.config.scale_reg / scales.numel())

    def _drop_non_finite(self, info: dict) -> None:
        """Replaces NaN / infinite gradient entries by 0 (no GPU sync): a NaN loss then moves nothing."""
        grads = [p.grad for p in self.splats.values()] + [self.pose_deltas.grad, self.colour_deltas.grad]
        if self.strategy is not None:  # it reads the image-plane gradients
            grads.append(info["means2d"].grad)
        for grad in grads:
            if grad is not None:
                grad.nan_to_num_(0.0, 0.0, 0.0)

    def _check(self, bad_steps: torch.Tensor, step: int) -> None:
        bad = int(bad_steps)
        if bad >= self.config.max_nan_steps:
            raise DimensionXError(
                f"training diverged: {bad} of the last {LOG_EVERY} losses were NaN or infinite (iteration {step + 1}). "
                "Causes: cameras far off (check sparse/0 with the COLMAP GUI) or learning rates too high: "
                "lower --lr-means / --lr-scales in a --config file, or drop --refine-cameras"
            )
        if len(self.splats["means"]) == 0:
            raise DimensionXError(
                f"every Gaussian was pruned by iteration {step + 1}: lower prune_opa, or pass --no-densify"
            )

    @torch.no_grad()
    def eval(self) -> tuple[dict, list[np.ndarray]]:
        """PSNR / SSIM on the held-out frames, and [H, 2W, 3] uint8 images (render | ground truth) of each."""
        ids = self.scene.holdout_ids
        if not ids:
            return {"psnr": None, "ssim": None}, []
        renders = torch.cat([self.render(self.scene.viewmats[i][None], self.scene.Ks[i][None], self.config.sh_degree)[0]
                             for i in ids]).clamp(0, 1)  # [V, H, W, 3]
        targets = self.scene.images[ids]
        metrics = {"psnr": float(np.mean([psnr(r, t) for r, t in zip(renders, targets)])),
                   "ssim": ssim(renders, targets)}
        side_by_side = torch.cat([renders, targets], dim=2)  # [V, H, 2W, 3]
        return metrics, list((side_by_side * 255).round().byte().cpu().numpy())

    @torch.no_grad()
    def render_traj(self, viewmats: np.ndarray, K: np.ndarray) -> np.ndarray:
        """[T, 4, 4] world-to-camera and one [3, 3] K -> [T, H, W, 3] uint8 frames."""
        frames = []  # kept on the device until the end: one copy to the host, not one wait per frame
        Ks = torch.as_tensor(K, dtype=torch.float32, device=self.device)[None]
        for viewmat in torch.as_tensor(viewmats, dtype=torch.float32, device=self.device):
            colors = self.render(viewmat[None], Ks, self.config.sh_degree)[0]
            frames.append((colors[0].clamp(0, 1) * 255).round().byte())
        return torch.stack(frames).cpu().numpy()

    @torch.no_grad()
    def viewmats(self) -> np.ndarray:
        """[C, 4, 4] world-to-camera of every camera, training ones with their refinement applied."""
        out = self.scene.viewmats.clone()
        for slot, i in enumerate(self.scene.train_ids):
            out[i] = self.train_viewmat(slot)[0]
        return out.cpu().double().numpy()

    def n_gaussians(self) -> int:
        return len(self.splats["means"])
