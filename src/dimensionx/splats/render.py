"""Rendering 3D Gaussians: gsplat's ``rasterization`` on CUDA, a pure-torch reference on CPU.

gsplat has no CPU rasterizer. ``reference_rasterization`` follows gsplat's "classic" pinhole
path step by step, so the same splats render the same image on both (the CUDA-only test in
``tests/test_recon_render.py`` measures the difference):

1. world-to-camera with ``viewmats`` [C, 4, 4], covariance R S S^T R^T;
2. EWA projection with gsplat's Jacobian clamp (1.3x the field of view), plus a 0.3 px^2 blur;
   ``rasterize_mode="antialiased"`` (Mip-Splatting's 2D filter, as gsplat does it) then scales each
   opacity by sqrt(det(Sigma_2D) / det(Sigma_2D + 0.3 I)), so that a splat smaller than a pixel does
   not grow brighter by the blur;
3. culling: behind ``NEAR_PLANE``, degenerate, below 1/255 opacity, or off-image bounding boxes
   (radius = ceil(min(3.33, sqrt(2 ln(255 opacity))) sigma), px);
4. colours from SH of the view direction (gaussian - camera), plus 0.5, clamped at 0;
5. front-to-back alpha compositing by depth, alpha = min(0.999, opacity exp(-d^T conic d / 2)),
   terms under 1/255 skipped, a pixel stopping before its transmittance would fall to 1e-4;
   pixel centres at (x + 0.5, y + 0.5).

It works tile by tile (16 x 16 px, each tile with the Gaussians whose box touches it), so
memory stays small and autograd gives the same gradients gsplat's backward pass computes,
including ``info["means2d"]`` that gsplat's densification strategy reads. Both backends share one
signature, :func:`rasterize` (``backend`` picks one), and return the same :class:`RenderInfo`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DimensionXError

NEAR_PLANE = 0.01  # world units
FAR_PLANE = 1e10
BLUR_PX2 = 0.3  # px^2 added to the 2D covariance (antialiasing floor)
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4
TILE_PX = 16
EXTEND_SIGMA = 3.33  # bounding-box half size in standard deviations
TILE_BATCH_ELEMENTS = 1 << 22  # pixel x Gaussian pairs evaluated at once (memory bound)
BACKENDS = ("auto", "gsplat", "reference")
RASTERIZE_MODES = ("classic", "antialiased")  # gsplat's rasterize_mode


def camera_centers(viewmats):
    """[..., 4, 4] world-to-camera (rigid) -> [..., 3] camera positions in world units, ``-R^T t``.

    The one place camera centres are computed; takes numpy arrays and torch tensors alike.
    """
    return -(viewmats[..., None, :3, 3] @ viewmats[..., :3, :3])[..., 0, :]


@dataclass
class RenderInfo(Mapping):
    """What a render returns besides the image: gsplat's ``info``, read by attribute here and by key
    (``info["means2d"]``, ``"radii" in info``) by gsplat's densification strategies."""

    means2d: torch.Tensor  # [C, N, 2] px; its .grad is the image-plane gradient densification reads
    radii: torch.Tensor  # [C, N, 2] int32 px, 0 where culled
    depths: torch.Tensor  # [C, N] camera z, world units
    conics: torch.Tensor  # [C, N, 3] (a, b, c) of the inverse 2D covariance
    width: int  # px
    height: int  # px
    n_cameras: int
    gaussian_ids: None = None  # packed renders only; these are unpacked

    def __getitem__(self, key: str):
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)


def scene_scale(viewmats: np.ndarray) -> float:
    """[C, 4, 4] -> 1.1x the largest distance of a camera from the cameras' centroid (gsplat's trainer), world
    units; 1 if they coincide. The scale of the 3D and 4D fits' learning rates and densification thresholds."""
    centers = camera_centers(viewmats)
    spread = float(np.linalg.norm(centers - centers.mean(axis=0), axis=1).max())
    return 1.1 * spread if spread > 0 else 1.0


def rasterize(
    means: torch.Tensor,  # [N, 3] world units
    quats: torch.Tensor,  # [N, 4] (w, x, y, z), any norm
    scales: torch.Tensor,  # [N, 3] standard deviations, world units
    opacities: torch.Tensor,  # [N] in [0, 1]
    sh: torch.Tensor,  # [N, K, 3] SH coefficients
    viewmats: torch.Tensor,  # [C, 4, 4] world-to-camera, OpenCV axes
    Ks: torch.Tensor,  # [C, 3, 3] px
    width: int,
    height: int,
    sh_degree: int,
    background: torch.Tensor | None = None,  # [3] or [C, 3] RGB in [0, 1]
    backend: str = "auto",  # "gsplat" (CUDA), "reference" (pure torch, any device), "auto": gsplat on CUDA
    rasterize_mode: str = "classic",  # or "antialiased" (opacities compensated for the 2D blur)
) -> tuple[torch.Tensor, torch.Tensor, RenderInfo]:
    """Renders [C, H, W, 3] colours and [C, H, W, 1] alphas, as ``gsplat.rasterization(...,
    packed=False, rasterize_mode=rasterize_mode)`` does, plus its ``info``.

    The gsplat backend runs gsplat's own five CUDA stages in its order (projection, SH colours,
    tile intersection, tile offsets, compositing), with less per-call work: the camera centres come
    from ``-R^T t`` where ``gsplat.rasterization`` inverts ``viewmats`` with ``torch.inverse``,
    which waits for the GPU (its error check) at every call, and the generic checks and branches
    of batched, packed, distributed and distorted cameras are left out. A training step then has
    one host sync, gsplat's count of tile intersections. The reference backend follows the same
    steps in torch (see the module's docstring).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if rasterize_mode not in RASTERIZE_MODES:
        raise ValueError(f"rasterize_mode {rasterize_mode!r}: use one of {', '.join(RASTERIZE_MODES)}")
    antialiased = rasterize_mode == "antialiased"
    C = len(viewmats)
    backgrounds = None if background is None else background.expand(C, 3)  # [C, 3]
    dirs = means[None] - camera_centers(viewmats)[:, None]  # [C, N, 3] camera -> Gaussian
    if backend == "gsplat" or (backend == "auto" and means.is_cuda):
        gsplat = _gsplat()
        radii, means2d, depths, conics, compensations = gsplat.fully_fused_projection(
            means, None, quats, scales, viewmats, Ks, width, height, eps2d=BLUR_PX2, near_plane=NEAR_PLANE,
            far_plane=FAR_PLANE, packed=False, calc_compensations=antialiased,
            opacities=opacities)  # [C, N, 2], [C, N, 2], [C, N], [C, N, 3], [C, N] or None
        seen = opacities.expand(C, -1) if compensations is None else opacities * compensations  # [C, N]
        colors = gsplat.spherical_harmonics(sh_degree, dirs, sh.expand(C, *sh.shape), masks=(radii > 0).all(dim=-1))
        colors = torch.clamp_min(colors + 0.5, 0.0)  # [C, N, 3]
        tiles_x, tiles_y = math.ceil(width / TILE_PX), math.ceil(height / TILE_PX)
        _, isect_ids, flatten_ids = gsplat.isect_tiles(means2d, radii, depths, TILE_PX, tiles_x, tiles_y)
        isect_offsets = gsplat.isect_offset_encode(isect_ids, C, tiles_x, tiles_y).reshape(C, tiles_y, tiles_x)
        image, alpha = gsplat.rasterize_to_pixels(means2d, conics, colors, seen, width, height,
                                                  TILE_PX, isect_offsets, flatten_ids, backgrounds=backgrounds)
    else:
        means2d, conics, depths, radii, seen = project(means, quats, scales, opacities, viewmats, Ks, width, height,
                                                       antialiased)
        colors = (eval_sh(dirs, sh, sh_degree) + 0.5).clamp_min(0.0)  # [C, N, 3]
        images, alphas = zip(*(composite(means2d[c], conics[c], depths[c], radii[c], seen[c], colors[c], width, height)
                               for c in range(C)))
        image, alpha = torch.stack(images), torch.stack(alphas)
        if backgrounds is not None:
            image = image + (1.0 - alpha) * backgrounds[:, None, None]
    return image, alpha, RenderInfo(means2d, radii, depths, conics, width, height, C)


gsplat_rasterization = functools.partial(rasterize, backend="gsplat")  # gsplat's CUDA stages (CUDA tensors)
reference_rasterization = functools.partial(rasterize, backend="reference")  # the pure-torch twin, on any device


def _gsplat():
    try:
        import gsplat
    except ImportError as exc:
        raise DimensionXError(
            f"gsplat is needed to render on CUDA but could not be imported ({exc}): "
            "run `pip install gsplat`, or pass --device cpu for the (slow) reference renderer"
        ) from None
    return gsplat


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """[N, 4] (w, x, y, z) -> [N, 3, 3]; normalises first."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


def project(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4]
    scales: torch.Tensor,  # [N, 3]
    opacities: torch.Tensor,  # [N]
    viewmats: torch.Tensor,  # [C, 4, 4]
    Ks: torch.Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    antialiased: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EWA splatting: means2d [C, N, 2] px, conics [C, N, 3] (a, b, c of the inverse 2D covariance),
    depths [C, N], radii [C, N, 2] int32 px (0 where culled), and the opacities [C, N] each camera
    composites: ``opacities``, times the blur's compensation when ``antialiased``."""
    M = quat_to_rotmat(quats) * scales[:, None, :]  # [N, 3, 3] = R S
    covars = M @ M.transpose(1, 2)  # [N, 3, 3]
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]  # [C, 3, 3], [C, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None]  # [C, N, 3]
    covars_c = torch.einsum("cij,njk,clk->cnil", R, covars, R)  # [C, N, 3, 3]

    x, y, z = means_c.unbind(-1)  # [C, N] each
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    lim_x = 0.3 * 0.5 * width / fx  # the Jacobian is evaluated at most 30% of the half-FOV outside the image
    lim_y = 0.3 * 0.5 * height / fy
    tx = z * torch.minimum(torch.maximum(x / z, -cx / fx - lim_x), (width - cx) / fx + lim_x)
    ty = z * torch.minimum(torch.maximum(y / z, -cy / fy - lim_y), (height - cy) / fy + lim_y)
    zeros = torch.zeros_like(z)
    J = torch.stack([fx / z, zeros, -fx * tx / z**2, zeros, fy / z, -fy * ty / z**2], dim=-1)
    J = J.reshape(*z.shape, 2, 3)  # [C, N, 2, 3]
    sharp = J @ covars_c @ J.transpose(-1, -2)  # [C, N, 2, 2] px^2, before the blur
    cov2d = sharp + BLUR_PX2 * torch.eye(2, dtype=means.dtype, device=means.device)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)  # [C, N, 2]

    a, b, c = cov2d[..., 0, 0], cov2d[..., 0, 1], cov2d[..., 1, 1]
    det = a * c - b * b
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)  # [C, N, 3]
    seen = opacities.expand_as(z)  # [C, N]
    if antialiased:  # gsplat's add_blur: the blur spreads a splat's weight, the compensation keeps it
        seen = seen * torch.sqrt((torch.linalg.det(sharp) / safe_det).clamp_min(0.0))

    with torch.no_grad():
        opacity = seen.detach()
        extend = torch.sqrt(2.0 * torch.log((opacity / ALPHA_MIN).clamp_min(1.0))).clamp_max(EXTEND_SIGMA)
        radii = torch.ceil(extend[..., None] * torch.stack([a, c], dim=-1).clamp_min(0).sqrt())  # [C, N, 2] px
        visible = (
            (z >= NEAR_PLANE) & (z <= FAR_PLANE) & (det > 0) & (opacity >= ALPHA_MIN)
            & ((radii[..., 0] > 0) | (radii[..., 1] > 0))
            & (means2d[..., 0] + radii[..., 0] > 0) & (means2d[..., 0] - radii[..., 0] < width)
            & (means2d[..., 1] + radii[..., 1] > 0) & (means2d[..., 1] - radii[..., 1] < height)
        )
        radii = (radii * visible[..., None]).to(torch.int32)
    return means2d, conics, z, radii, seen


# Real spherical-harmonics basis constants (the ones 3DGS and gsplat use), by degree.
SH_C0 = 0.28209479177387814  # Y_0^0 = 1 / (2 sqrt(pi))
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def eval_sh(dirs: torch.Tensor, sh: torch.Tensor, degree: int) -> torch.Tensor:
    """Colours [C, N, 3] of coefficients ``sh`` [N, K, 3] seen along ``dirs`` [C, N, 3] (any length)."""
    x, y, z = F.normalize(dirs, dim=-1).unbind(-1)  # [C, N]
    basis = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        basis += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        basis += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * x * z,
                  SH_C2[4] * (xx - yy)]
    if degree >= 3:
        basis += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * x * y * z, SH_C3[2] * y * (4 * zz - xx - yy),
                  SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
                  SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy)]
    basis = torch.stack(basis, dim=-1)  # [C, N, (degree + 1)^2]
    return torch.einsum("cnk,nkd->cnd", basis, sh[:, : basis.shape[-1]])


def composite(
    means2d: torch.Tensor,  # [N, 2] px
    conics: torch.Tensor,  # [N, 3]
    depths: torch.Tensor,  # [N]
    radii: torch.Tensor,  # [N, 2] int32, 0 where culled
    opacities: torch.Tensor,  # [N]
    rgb: torch.Tensor,  # [N, 3]
    width: int,
    height: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back alpha compositing of one camera: ([H, W, 3], [H, W, 1]).

    Each 16 x 16 px tile gets the depth-sorted list of Gaussians whose box touches it, padded
    to the longest list with a transparent Gaussian; tiles are then evaluated in batches.
    """
    tiles_x, tiles_y = math.ceil(width / TILE_PX), math.ceil(height / TILE_PX)
    ids = torch.nonzero((radii > 0).any(dim=-1)).squeeze(1)
    ids = ids[torch.argsort(depths.detach()[ids])]  # [M] visible, front to back
    table = tile_table(means2d.detach()[ids], radii[ids], tiles_x, tiles_y)  # [T, K] indices into ids, M = pad
    means2d, conics, opacities, rgb = (padded(x, ids) for x in (means2d, conics, opacities, rgb))
    grid = torch.arange(TILE_PX, device=rgb.device)
    ys, xs = torch.meshgrid(grid, grid, indexing="ij")
    offsets = torch.stack([xs, ys], -1).reshape(-1, 2).to(rgb) + 0.5  # [P, 2] pixel centres within a tile
    ty, tx = torch.meshgrid(torch.arange(tiles_y, device=rgb.device), torch.arange(tiles_x, device=rgb.device),
                            indexing="ij")
    origins = torch.stack([tx, ty], -1).reshape(-1, 1, 2).to(rgb) * TILE_PX  # [T, 1, 2]
    batch = max(1, TILE_BATCH_ELEMENTS // (TILE_PX * TILE_PX * table.shape[1]))
    colors, alphas = [], []
    for start in range(0, len(table), batch):
        g = table[start : start + batch]  # [t, K]
        pixels = origins[start : start + batch] + offsets  # [t, P, 2]
        color, alpha = composite_tiles(means2d[g], conics[g], opacities[g], rgb[g], pixels)
        colors.append(color)
        alphas.append(alpha)
    image = untile(torch.cat(colors), tiles_x, tiles_y, width, height)
    return image, untile(torch.cat(alphas), tiles_x, tiles_y, width, height)


def padded(values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """[N, ...] -> [M + 1, ...]: the rows ``ids``, then a row of zeros (the transparent pad Gaussian)."""
    return torch.cat([values[ids], torch.zeros_like(values[:1])])


@torch.no_grad()
def tile_table(means2d: torch.Tensor, radii: torch.Tensor, tiles_x: int, tiles_y: int) -> torch.Tensor:
    """[M, 2] px, [M, 2] px -> [T, K] int64: per tile, the Gaussians (in input order) whose box touches it.

    Rows are padded with M (the index of an appended transparent Gaussian); K >= 1.
    """
    lo = ((means2d - radii) / TILE_PX).floor()  # [M, 2] first tile touched
    hi = ((means2d + radii) / TILE_PX).ceil()  # [M, 2] one past the last
    ty, tx = torch.meshgrid(torch.arange(tiles_y, device=lo.device), torch.arange(tiles_x, device=lo.device),
                            indexing="ij")
    tx, ty = tx.reshape(-1, 1).to(lo), ty.reshape(-1, 1).to(lo)  # [T, 1]
    touches = (lo[:, 0] <= tx) & (tx < hi[:, 0]) & (lo[:, 1] <= ty) & (ty < hi[:, 1])  # [T, M]
    counts = touches.sum(dim=1)  # [T]
    tile, column = torch.nonzero(touches, as_tuple=True)  # tile-major, columns ascending
    slot = torch.arange(len(tile), device=lo.device) - (torch.cumsum(counts, 0) - counts)[tile]
    table = torch.full((len(counts), max(1, int(counts.max()))), len(means2d), device=lo.device)
    table[tile, slot] = column
    return table


def composite_tiles(
    means2d: torch.Tensor,  # [t, K, 2] px, each tile's Gaussians front to back
    conics: torch.Tensor,  # [t, K, 3]
    opacities: torch.Tensor,  # [t, K]
    rgb: torch.Tensor,  # [t, K, 3]
    pixels: torch.Tensor,  # [t, P, 2] px, pixel centres of each tile
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colours [t, P, 3] and alphas [t, P, 1] of ``t`` tiles."""
    dx = means2d[:, None, :, 0] - pixels[..., 0, None]  # [t, P, K]
    dy = means2d[:, None, :, 1] - pixels[..., 1, None]
    a, b, c = (conics[:, None, :, i] for i in range(3))  # [t, 1, K]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = (opacities[:, None] * torch.exp(-sigma)).clamp_max(ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    transmittance = torch.cumprod(1.0 - alpha, dim=-1)  # [t, P, K], after each Gaussian
    before = torch.cat([torch.ones_like(transmittance[..., :1]), transmittance[..., :-1]], dim=-1)
    weights = alpha * before * (transmittance > TRANSMITTANCE_MIN)
    return weights @ rgb, weights.sum(dim=-1, keepdim=True)


def untile(values: torch.Tensor, tiles_x: int, tiles_y: int, width: int, height: int) -> torch.Tensor:
    """[T, P, D] per-tile pixels -> [H, W, D] image."""
    d = values.shape[-1]
    image = values.reshape(tiles_y, tiles_x, TILE_PX, TILE_PX, d).permute(0, 2, 1, 3, 4)
    return image.reshape(tiles_y * TILE_PX, tiles_x * TILE_PX, d)[:height, :width]
