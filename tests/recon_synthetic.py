"""A synthetic splat scene with known cameras, rendered by the reference renderer (test helper).

The scene is a cloud of small, randomly coloured and oriented Gaussians in a 2-unit cube, in
front of a large textured backdrop of more Gaussians: it gives SIFT many distinct blobs and
corners to match. Cameras sit on an arc around the origin, looking at it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dimensionx.camerafiles import OPENGL_FROM_OPENCV
from dimensionx.splats.gaussians import rgb_to_sh
from dimensionx.splats.render import reference_rasterization
from dimensionx.videofiles import write_video

# Where the shared montage of camera motions (camera_montage_plate_1280x854.mp4) jumps back from its input
# view to the far end of the next motion: frame t-1 is (nearly) the input photo, frame t a view far from it.
MONTAGE_SHOT_STARTS = [4, 28, 53, 77, 102, 126, 151, 175, 200, 224, 249, 273]


def look_at(eye: np.ndarray, target: np.ndarray = np.zeros(3), up: np.ndarray = np.array([0.0, -1.0, 0.0])):
    """[4, 4] world-to-camera, OpenCV axes: z towards ``target``, image-down along -``up``."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    viewmat = np.eye(4)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = -R @ eye
    return viewmat


def arc_cameras(n: int, degrees: float, radius: float = 4.0, height: float = -1.0) -> np.ndarray:
    """[n, 4, 4] cameras on a horizontal arc of ``degrees`` around the origin (y is down)."""
    angles = np.radians(np.linspace(-degrees / 2, degrees / 2, n))
    return np.stack([look_at(np.array([radius * np.sin(a), height, -radius * np.cos(a)])) for a in angles])


def intrinsics(width: int, height: int, fov_degrees: float = 60.0) -> np.ndarray:
    f = 0.5 * width / np.tan(np.radians(fov_degrees) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def splat_scene(n: int = 1500, seed: int = 0) -> dict[str, torch.Tensor]:
    """Gaussians: a cloud in [-1, 1]^3 and a backdrop wall at z = 2.5 (behind the origin from the cameras)."""
    g = torch.Generator().manual_seed(seed)
    n_wall = n // 2
    cloud = torch.rand(n - n_wall, 3, generator=g) * 2 - 1
    wall = torch.cat([torch.rand(n_wall, 2, generator=g) * 6 - 3, torch.full((n_wall, 1), 2.5)], dim=1)
    means = torch.cat([cloud, wall])
    sh = torch.zeros(n, 16, 3)
    sh[:, 0] = rgb_to_sh(torch.rand(n, 3, generator=g))
    return {
        "means": means,
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.cat([torch.rand(n - n_wall, 3, generator=g) * 0.06 + 0.01,
                             torch.rand(n_wall, 3, generator=g) * 0.15 + 0.03]),
        "opacities": torch.rand(n, generator=g) * 0.5 + 0.5,
        "sh": sh,
    }


def render_views(scene: dict[str, torch.Tensor], viewmats: np.ndarray, K: np.ndarray, width: int, height: int):
    """[C, H, W, 3] uint8 renders of ``scene`` on a grey background."""
    Ks = torch.as_tensor(K, dtype=torch.float32).expand(len(viewmats), 3, 3)
    with torch.no_grad():
        images, _, _ = reference_rasterization(
            scene["means"], scene["quats"], scene["scales"], scene["opacities"], scene["sh"],
            torch.as_tensor(viewmats, dtype=torch.float32), Ks, width, height, sh_degree=0,
            background=torch.full((len(viewmats), 3), 0.5))
    return (images.clamp(0, 1) * 255).round().byte().numpy()


def write_orbit_video(path: Path, n: int = 16, degrees: float = 60.0, width: int = 256, height: int = 192):
    """Writes an mp4 of the synthetic scene seen along an arc; returns its (viewmats [n, 4, 4], K [3, 3])."""
    viewmats, K = arc_cameras(n, degrees), intrinsics(width, height)
    write_video(render_views(splat_scene(), viewmats, K, width, height), path, fps=8)
    return viewmats, K


def transforms_json(viewmats: np.ndarray, K: np.ndarray, width: int, height: int) -> dict:
    """nerfstudio transforms.json of known cameras (OpenGL camera-to-world)."""
    return {
        "fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "w": width, "h": height,
        "frames": [{"file_path": f"images/{i}.png", "transform_matrix": (np.linalg.inv(v) @ OPENGL_FROM_OPENCV).tolist()}
                   for i, v in enumerate(viewmats)],
    }


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising |s R source + t - target|^2 over [N, 3] point pairs (Umeyama 1991)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    U, D, Vt = np.linalg.svd(xt.T @ xs / len(source))
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    s = np.trace(np.diag(D) @ S) / xs.var(0).sum()
    return s, R, mu_t - s * R @ mu_s


def ring_cameras(n: int, radius: float = 4.0, height: float = -1.0) -> np.ndarray:
    """[n, 4, 4] cameras once around the origin (360 degrees, the last one short of the first), looking at it."""
    angles = np.radians(np.arange(n) * 360.0 / n)
    return np.stack([look_at(np.array([radius * np.sin(a), height, -radius * np.cos(a)])) for a in angles])


def repeated_ring_scene(n_cloud: int = 900, n_tile: int = 300, tiles: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Gaussians: a random cloud in [-1, 1]^3 inside a cylinder wall (radius 6) covered by ``tiles`` copies of
    one random pattern, so that views ``360 / tiles`` degrees apart see the same wall texture."""
    g = torch.Generator().manual_seed(seed)
    cloud = torch.rand(n_cloud, 3, generator=g) * 2 - 1
    pattern_angle = torch.rand(n_tile, generator=g) * (2 * np.pi / tiles)  # one tile's pattern
    pattern_y = torch.rand(n_tile, generator=g) * 4 - 3
    pattern_rgb = torch.rand(n_tile, 3, generator=g)
    angle = torch.cat([pattern_angle + k * 2 * np.pi / tiles for k in range(tiles)])
    wall = torch.stack([6 * torch.sin(angle), pattern_y.repeat(tiles), -6 * torch.cos(angle)], dim=1)
    n = n_cloud + len(wall)
    sh = torch.zeros(n, 16, 3)
    sh[:, 0] = rgb_to_sh(torch.cat([torch.rand(n_cloud, 3, generator=g), pattern_rgb.repeat(tiles, 1)]))
    return {
        "means": torch.cat([cloud, wall]),
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.cat([torch.rand(n_cloud, 3, generator=g) * 0.06 + 0.01, torch.full((len(wall), 3), 0.12)]),
        "opacities": torch.rand(n, generator=g) * 0.5 + 0.5,
        "sh": sh,
    }


def ring_reconstruction(n: int = 36, kinked: range = range(12, 15), turn_degrees: float = 30.0, shrink: float = 0.75,
                        links: int = 4, width: int = 320, height: int = 240, seed: int = 0):
    """A COLMAP model of ``n`` cameras once around a point cloud, whose ``kinked`` cameras jump off the ring.

    The kinked cameras, and 60 points only they see, are turned ``turn_degrees`` about the ring's
    axis and pulled in to ``shrink`` times their distance (one similarity, so their observations
    agree with each other); they see only ``links`` of the points the other cameras see, projected
    from where the kinked cameras were moved (observations that disagree with the rest). Returns
    (reconstruction, image names in ring order, [n, 4, 4] true world-to-camera matrices).
    """
    import pycolmap

    rng = np.random.default_rng(seed)
    true = ring_cameras(n)
    K = intrinsics(width, height)
    similarity = np.eye(4)
    similarity[:3, :3] = shrink * Rotation.from_euler("y", -turn_degrees, degrees=True).as_matrix()
    posed = true.copy()
    for k in kinked:  # world-to-camera of a camera moved by the similarity (scale removed from the rotation)
        c2w = similarity @ np.linalg.inv(true[k])
        c2w[:3, :3] /= shrink
        posed[k] = np.linalg.inv(c2w)
    shared = rng.uniform(-1, 1, (300, 3))
    private = similarity[:3, :3] @ rng.uniform(-1, 1, (60, 3)).T
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(camera_id=1, model="SIMPLE_PINHOLE", width=width, height=height,
                                                    params=[K[0, 0], K[0, 2], K[1, 2]]))
    tracks: dict[int, list[tuple[int, int]]] = {}
    names = [f"frame_{i:05d}.png" for i in range(n)]
    for i in range(n):
        seen = [(p, x) for p, x in enumerate(shared)] if i not in kinked else \
            [(p, shared[p]) for p in rng.choice(len(shared), links, replace=False)] + \
            [(len(shared) + p, x) for p, x in enumerate(private.T)]
        cam = posed[i]
        xy = [(K @ (cam[:3, :3] @ x + cam[:3, 3]))[:2] / (cam[:3, :3] @ x + cam[:3, 3])[2] for _, x in seen]
        xy = [v + rng.normal(0, 0.3, 2) for v in xy]
        image = pycolmap.Image(image_id=i + 1, name=names[i], camera_id=1,
                               points2D=[pycolmap.Point2D(np.asarray(v, dtype=np.float64)) for v in xy])
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(cam[:3, :3]), cam[:3, 3]))
        for j, (p, _) in enumerate(seen):
            tracks.setdefault(p, []).append((i + 1, j))
    for p, track in tracks.items():
        xyz = shared[p] if p < len(shared) else private[:, p - len(shared)]
        point = pycolmap.Track()
        for image_id, j in track:
            point.add_element(image_id, j)
        rec.add_point3D(np.asarray(xyz, dtype=np.float64), point, np.zeros(3, dtype=np.uint8))
    rec.update_point_3d_errors()
    return rec, names, true



def point_views(scene: dict[str, torch.Tensor], viewmats: np.ndarray, K: np.ndarray, width: int, height: int,
                max_radius: int = 6) -> np.ndarray:
    """[C, H, W, 3] uint8: each Gaussian of ``scene`` drawn as an opaque square of its projected size (at most
    ``max_radius`` px), the nearest in front, on a grey background. A fast stand-in for :func:`render_views`
    where only what the views show matters (the cut detector's thumbnails), not a splat's exact shading."""
    from dimensionx.splats.gaussians import sh_to_rgb

    means = scene["means"].numpy().astype(np.float64)  # [N, 3]
    sizes = scene["scales"].numpy().max(axis=1)  # [N] world units
    colors = (sh_to_rgb(scene["sh"][:, 0]).clamp(0, 1).numpy() * 255).round().astype(np.uint8)  # [N, 3]
    grid = np.arange(-max_radius, max_radius + 1)
    dy, dx = (d.ravel() for d in np.meshgrid(grid, grid, indexing="ij"))  # [S] offsets, px
    out = np.full((len(viewmats), height * width, 3), 128, np.uint8)
    for image, viewmat in zip(out, viewmats):
        cam = means @ viewmat[:3, :3].T + viewmat[:3, 3]  # [N, 3]
        front = cam[:, 2] > 0.1
        z = cam[front, 2]
        u = K[0, 0] * cam[front, 0] / z + K[0, 2]  # [M] px
        v = K[1, 1] * cam[front, 1] / z + K[1, 2]
        r = np.minimum(K[0, 0] * sizes[front] / z, max_radius)  # [M] px
        x = np.round(u[:, None] + dx).astype(np.int64)  # [M, S]
        y = np.round(v[:, None] + dy).astype(np.int64)
        inside = (np.abs(dx) <= r[:, None]) & (np.abs(dy) <= r[:, None]) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        point, _ = np.nonzero(inside)
        pixel = (y * width + x)[inside]
        order = np.lexsort((z[point], pixel))  # by pixel, nearest first
        first = np.ones(len(order), bool)
        first[1:] = pixel[order][1:] != pixel[order][:-1]
        nearest = order[first]
        image[pixel[nearest]] = colors[np.flatnonzero(front)[point[nearest]]]
    return out.reshape(len(viewmats), height, width, 3)


MOTIONS = (("orbit", 30.0), ("orbit", -30.0), ("rise", 1.5), ("rise", -0.8), ("dolly", 0.4), ("dolly", -0.4),
           ("pan", 15.0), ("pan", -15.0), ("tilt", 12.0), ("tilt", -12.0), ("orbit", 15.0), ("dolly", 0.2))
# camera motions of a montage: (kind, amount at the clip's end): orbit degrees about the scene's centre, rise
# units upwards, dolly the fraction of the distance moved in (out if negative), pan / tilt degrees the gaze turns


def motion_cameras(kind: str, amount: float, n: int, radius: float = 4.0, height: float = -1.0) -> np.ndarray:
    """[n, 4, 4] cameras of one motion, all starting from the same view (angle 0 on the arc of :func:`arc_cameras`)."""
    out = []
    for t in np.linspace(0.0, 1.0, n):
        angle = np.radians(amount * t) if kind == "orbit" else 0.0
        up = amount * t if kind == "rise" else 0.0
        distance = radius * (1 - amount * t) if kind == "dolly" else radius
        pan = np.radians(amount * t) if kind == "pan" else 0.0
        tilt = np.radians(amount * t) if kind == "tilt" else 0.0
        eye = np.array([distance * np.sin(angle), height - up, -distance * np.cos(angle)])
        target = np.array([radius * np.sin(pan), -radius * np.sin(tilt), 0.0])
        out.append(look_at(eye, target))
    return np.stack(out)


def same_start_montage(clip_frames: int = 24, scale: float = 1.0, width: int = 64, height: int = 48):
    """A montage of the :data:`MOTIONS` of the synthetic scene, each clip ``clip_frames`` long and starting
    from the same view (as clips generated from one photo do), each motion ``scale`` times its amount;
    returns ([T, H, W, 3] uint8, the frame index where each clip after the first starts)."""
    scene, K = splat_scene(), intrinsics(width, height)
    clips = [point_views(scene, motion_cameras(kind, scale * amount, clip_frames), K, width, height)
             for kind, amount in MOTIONS]
    return np.concatenate(clips), [clip_frames * k for k in range(1, len(clips))]


class RenderReader:
    """A :class:`~dimensionx.recon.frames.FrameReader` stand-in for a video of ``scene`` seen from ``viewmats``
    [T, 4, 4]: each frame is rendered when read (a repair decodes only a few of them)."""

    def __init__(self, scene: dict[str, torch.Tensor], viewmats: np.ndarray, K: np.ndarray, width: int, height: int):
        self.scene, self.viewmats, self.K, self.size = scene, viewmats, K, (width, height)

    def read(self, ids: np.ndarray) -> np.ndarray:
        """[len(ids), H, W, 3] uint8."""
        return render_views(self.scene, self.viewmats[ids], self.K, *self.size)
