"""A synthetic moving scene with known motion, and what a 4D fit of it recovered (test and benchmark helper).

The scene: a backdrop wall of large Gaussians (still) and an object of small Gaussians in a
0.8-unit cube that translates ``SHIFT`` units along x and turns ``TURN_DEGREES`` about y over
t in [0, 1] (``motion`` scales both; 0 is the scene held still). Its ``times x views`` grid is
rendered by ``splats.render.rasterize`` (gsplat on CUDA, the reference rasterizer on the CPU)
from cameras on an arc 4 units from the object.

Measured on a fit, against the known truth:

- held-out PSNR at held-out (view, time) pairs: the held-out views at the grid's times
  (``Fitter.evaluate``), and every view at times between the grid's rows, never trained on;
- the motion error: each fitted Gaussian at the middle time is carried to every grid time by
  the true motion of the scene part it lies in (the object's rigid motion, or none for the
  wall), and compared with where the field puts it; world units, opacity-weighted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from dimensionx.fourd.export import gaussians_at
from dimensionx.fourd.fit import Fitter, GridViews, split_views
from dimensionx.splats.gaussians import rgb_to_sh
from dimensionx.splats.metrics import psnr
from dimensionx.splats.render import rasterize
from recon_synthetic import arc_cameras, intrinsics

SHIFT, TURN_DEGREES = 0.8, 60.0


@dataclass
class MovingScene:
    motion: float = 1.0  # 0: held still
    n: int = 200  # Gaussians, half object, half wall
    seed: int = 0

    def __post_init__(self):
        g = torch.Generator().manual_seed(self.seed)
        self.n_object = self.n // 2
        self.object = torch.rand(self.n_object, 3, generator=g) * 0.8 - 0.4  # [n_object, 3] at t = 0 before the shift
        self.wall = torch.cat([torch.rand(self.n - self.n_object, 2, generator=g) * 5 - 2.5,
                               torch.full((self.n - self.n_object, 1), 2.0)], dim=1)
        sh = rgb_to_sh(torch.rand(self.n, 3, generator=g))[:, None]
        self.fixed = {"quats": torch.randn(self.n, 4, generator=g), "opacities": torch.full((self.n,), 0.9), "sh": sh,
                      "scales": torch.cat([torch.full((self.n_object, 3), 0.08), torch.full((self.n - self.n_object, 3), 0.25)])}

    def rigid(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The object's pose at ``t``: (rotation [3, 3], translation [3]), x_t = R x + c."""
        a = math.radians(self.motion * TURN_DEGREES * t)
        R = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        return R, torch.tensor([self.motion * SHIFT * (t - 0.5), 0.0, 0.0])

    def at(self, t: float) -> dict[str, torch.Tensor]:
        """The Gaussians at time ``t``: means [n, 3], quats [n, 4], scales [n, 3], opacities [n], sh [n, 1, 3]."""
        R, c = self.rigid(t)
        return {**self.fixed, "means": torch.cat([self.object @ R.T + c, self.wall])}

    def carry(self, points: np.ndarray, s: float, t: float) -> np.ndarray:
        """[P, 3] points at time ``s`` -> where the scene's motion puts them at ``t``: a point nearest an object
        Gaussian moves with the object, one nearest the wall stays."""
        on_object = cKDTree(self.at(s)["means"].numpy()).query(points)[1] < self.n_object
        Rs, cs = (x.double().numpy() for x in self.rigid(s))
        Rt, ct = (x.double().numpy() for x in self.rigid(t))
        moved = ((points - cs) @ Rs) @ Rt.T + ct  # R_t R_s^T (x - c_s) + c_t
        return np.where(on_object[:, None], moved, points)


def render_truth(scene: MovingScene, t: float, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[C, H, W, 3] the true scene at ``t`` from ``viewmats`` [C, 4, 4] / ``Ks`` [C, 3, 3], on their device."""
    s = {k: v.to(viewmats.device) for k, v in scene.at(t).items()}
    with torch.no_grad():
        image, _, _ = rasterize(s["means"], s["quats"], s["scales"], s["opacities"], s["sh"], viewmats, Ks, width, height, 0,
                                torch.zeros(3, device=viewmats.device))
    return image.clamp(0, 1)


def cameras(views: int, width: int, height: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """([views, 4, 4] arc of 60 degrees, [views, 3, 3]) on ``device``."""
    viewmats = torch.tensor(arc_cameras(views, 60.0), dtype=torch.float32, device=device)
    Ks = torch.tensor(intrinsics(width, height), dtype=torch.float32, device=device).expand(views, 3, 3).contiguous()
    return viewmats, Ks


def grid_views(scene: MovingScene, times: int, views: int, width: int, height: int, holdout: int,
               device: torch.device = torch.device("cpu")) -> GridViews:
    """The scene's grid: ``times`` evenly spaced in [0, 1] x ``views``, every ``holdout``-th view held out."""
    viewmats, Ks = cameras(views, width, height, device)
    values = torch.linspace(0, 1, times)
    images = torch.stack([render_truth(scene, t, viewmats, Ks, width, height) for t in values.tolist()])
    train, held = split_views(views, holdout)
    return GridViews(images, values, viewmats, Ks, train, held)


def between_times(times: torch.Tensor) -> list[float]:
    """The midpoints between consecutive grid times: times no row was rendered at."""
    t = times.tolist()
    return [(a + b) / 2 for a, b in zip(t, t[1:])]


@torch.no_grad()
def held_out_time_psnr(fitter: Fitter, scene: MovingScene) -> list[float]:
    """PSNR (dB) of every view at each time between the grid's rows against the true scene there."""
    v = fitter.views
    H, W = v.images.shape[2:4]
    return [psnr(fitter.render(t, v.viewmats, v.Ks)[0], render_truth(scene, t, v.viewmats, v.Ks, W, H))
            for t in between_times(v.times)]


@torch.no_grad()
def motion_error(fitter: Fitter, scene: MovingScene, s: float = 0.5) -> dict[str, float]:
    """World units, opacity-weighted over the fitted Gaussians and averaged over the grid's times:
    ``error``, distance between where the field puts each Gaussian and where the true motion carries it
    from time ``s``; ``true_motion``, how far the true motion carries them; ``relative``, their ratio."""
    splats = {k: v.detach() for k, v in fitter.splats.items()}
    field = fitter.field
    position = (lambda t: splats["means"]) if field is None else (lambda t: gaussians_at(splats, field, t)["means"])
    start = position(s).double().cpu().numpy()  # [N, 3]
    weights = torch.sigmoid(splats["opacities"]).double().cpu().numpy()  # [N]
    error = truth = 0.0
    times = fitter.views.times.tolist()
    for t in times:
        carried = scene.carry(start, s, t)  # [N, 3]
        error += np.average(np.linalg.norm(position(t).double().cpu().numpy() - carried, axis=1), weights=weights)
        truth += np.average(np.linalg.norm(carried - start, axis=1), weights=weights)
    error, truth = error / len(times), truth / len(times)
    return {"error": error, "true_motion": truth, "relative": error / truth if truth > 0 else float("nan")}
