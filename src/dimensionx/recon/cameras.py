"""Cameras of a reconstruction and the file formats other tools read them from.

Convention inside the stage (the one of COLMAP and gsplat): world-to-camera matrices with
OpenCV camera axes (x right, y down, z forward), pinhole intrinsics in pixels with the centre
of the top-left pixel at (0.5, 0.5). ``transforms.json`` (nerfstudio / instant-ngp) stores
camera-to-world matrices with OpenGL axes (x right, y up, z backward); the world frame is the
SfM one in both files, so ``sparse/0`` and ``transforms.json`` describe the same cameras.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.interpolate import make_interp_spline
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation, Slerp

from ..camerafiles import OPENGL_FROM_OPENCV, focal_x
from ..errors import DimensionXError
from ..splats.render import camera_centers
from .frames import DUPLICATE_CHANGE

if TYPE_CHECKING:
    import pycolmap



@dataclass
class Cameras:
    names: list[str]  # image file name of each camera, in frame order
    frame_ids: np.ndarray  # [C] index of each camera's frame in the sampled frames
    viewmats: np.ndarray  # [C, 4, 4] world-to-camera, OpenCV axes
    Ks: np.ndarray  # [C, 3, 3] intrinsics, pixels
    width: int  # px
    height: int  # px

    def __len__(self) -> int:
        return len(self.names)

    def centers(self) -> np.ndarray:
        """[C, 3] camera positions in world units."""
        return camera_centers(self.viewmats)

    def subset(self, ids: np.ndarray) -> "Cameras":
        return Cameras([self.names[i] for i in ids], self.frame_ids[ids], self.viewmats[ids], self.Ks[ids],
                       self.width, self.height)


def cameras_from_reconstruction(rec: pycolmap.Reconstruction, names: list[str]) -> Cameras:
    """The registered images of ``rec``, in the order of ``names`` (the sampled frames)."""
    by_name = {image.name: image for image in rec.images.values() if image.has_pose}
    frame_ids = np.array([i for i, name in enumerate(names) if name in by_name], dtype=np.int64)
    images = [by_name[names[i]] for i in frame_ids]
    viewmats = np.stack([_homogeneous(image.cam_from_world().matrix()) for image in images])
    Ks = np.stack([image.camera.calibration_matrix() for image in images])
    camera = images[0].camera
    return Cameras([names[i] for i in frame_ids], frame_ids, viewmats, Ks, camera.width, camera.height)


def _homogeneous(m34: np.ndarray) -> np.ndarray:
    return np.vstack([m34, [0.0, 0.0, 0.0, 1.0]])


def reconstruction_from_cameras(cameras: Cameras, points: np.ndarray, colors: np.ndarray) -> pycolmap.Reconstruction:
    """A COLMAP model of ``cameras`` (one PINHOLE camera each) and ``points`` [P, 3] / ``colors`` [P, 3] uint8.

    The points carry no tracks: they are where the splats start, not triangulated features.
    """
    from .colmap import pycolmap  # here, not at the top: the 4D stage reads transforms.json without pycolmap

    rec = pycolmap.Reconstruction()
    for i, (name, K, viewmat) in enumerate(zip(cameras.names, cameras.Ks, cameras.viewmats), start=1):
        camera = pycolmap.Camera(camera_id=i, model="PINHOLE", width=cameras.width, height=cameras.height,
                                 params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
        rec.add_camera_with_trivial_rig(camera)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(viewmat[:3, :3]), viewmat[:3, 3])
        rec.add_image_with_trivial_frame(pycolmap.Image(image_id=i, name=name, camera_id=i), pose)
    for xyz, rgb in zip(points, colors):
        rec.add_point3D(xyz.astype(np.float64), pycolmap.Track(), rgb.astype(np.uint8))
    return rec


def set_poses(rec: pycolmap.Reconstruction, cameras: Cameras) -> None:
    """Moves the images of ``rec`` named in ``cameras`` to its poses (after camera refinement)."""
    from .colmap import pycolmap

    by_name = {image.name: image for image in rec.images.values()}
    for name, viewmat in zip(cameras.names, cameras.viewmats):
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(viewmat[:3, :3]), viewmat[:3, 3])
        rec.frames[by_name[name].frame_id].rig_from_world = pose


def transforms_from_cameras(cameras: Cameras, image_dir: str = "images") -> dict:
    """nerfstudio ``transforms.json``: per-frame intrinsics and OpenGL camera-to-world matrices."""
    frames = []
    for name, K, viewmat in zip(cameras.names, cameras.Ks, cameras.viewmats):
        c2w = np.linalg.inv(viewmat) @ OPENGL_FROM_OPENCV
        frames.append({
            "file_path": f"{image_dir}/{name}",
            "fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
            "w": cameras.width, "h": cameras.height,
            "transform_matrix": c2w.tolist(),
        })
    return {"camera_model": "OPENCV", "frames": frames}


def cameras_from_transforms(path: str | Path, names: list[str]) -> Cameras:
    """Reads a nerfstudio / instant-ngp ``transforms.json`` whose frames are the sampled frames, in order.

    Intrinsics may sit at the top level or per frame (``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h``,
    or ``camera_angle_x``).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        frames = data["frames"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DimensionXError(
            f"--cameras {path} is not a readable transforms.json ({exc!r}): pass a nerfstudio-style file "
            "with a 'frames' list of {'transform_matrix', 'fl_x', ...}"
        ) from None
    if len(frames) != len(names):
        raise DimensionXError(
            f"--cameras {path} has {len(frames)} frames but {len(names)} frames were sampled from the video: "
            f"give one camera per frame and pass --frames {len(frames)} (and --shot if the video has cuts)"
        )
    Ks, viewmats = [], []
    size = None
    for k, frame in enumerate(frames):
        fields = {**data, **frame}
        try:
            w, h = int(fields["w"]), int(fields["h"])
            fx = focal_x(fields, w)
            fy = float(fields.get("fl_y", fx))
            cx, cy = float(fields.get("cx", w / 2)), float(fields.get("cy", h / 2))
            c2w = np.asarray(frame["transform_matrix"], dtype=np.float64).reshape(4, 4)
        except (KeyError, ValueError, TypeError) as exc:
            raise DimensionXError(
                f"--cameras {path}: frame {k} lacks a usable {exc} (needs transform_matrix, w, h and fl_x or "
                "camera_angle_x): fix the file or drop --cameras to estimate cameras with SfM"
            ) from None
        size = size or (w, h)
        Ks.append(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]))
        viewmats.append(np.linalg.inv(c2w @ OPENGL_FROM_OPENCV))
    return Cameras(list(names), np.arange(len(names)), np.stack(viewmats), np.stack(Ks), *size)


def scale_intrinsics(cameras: Cameras, width: int, height: int) -> Cameras:
    """The same cameras for images of ``width`` x ``height`` px (e.g. after downscaling the frames)."""
    s = np.diag([width / cameras.width, height / cameras.height, 1.0])
    return Cameras(cameras.names, cameras.frame_ids, cameras.viewmats, s @ cameras.Ks, width, height)


def smooth_path(cameras: Cameras, n_frames: int, sigma: float) -> np.ndarray:
    """[n_frames, 4, 4] world-to-camera matrices along a smoothed path through ``cameras`` in frame order.

    Centres are Gaussian-smoothed (``sigma`` in cameras) and spline-interpolated; rotations are
    slerped between the cameras.
    """
    centers = gaussian_filter1d(cameras.centers(), sigma, axis=0, mode="nearest") if sigma > 0 else cameras.centers()
    c2w_rot = Rotation.from_matrix(np.transpose(cameras.viewmats[:, :3, :3], (0, 2, 1)))
    knots = np.arange(len(cameras), dtype=np.float64)
    t = np.linspace(0.0, knots[-1], n_frames)
    path_centers = make_interp_spline(knots, centers, k=min(3, len(cameras) - 1))(t)  # [T, 3]
    path_rot = Slerp(knots, c2w_rot)(t).as_matrix()  # [T, 3, 3] camera-to-world
    viewmats = np.tile(np.eye(4), (n_frames, 1, 1))
    viewmats[:, :3, :3] = np.transpose(path_rot, (0, 2, 1))
    viewmats[:, :3, 3] = -np.einsum("tij,tj->ti", viewmats[:, :3, :3], path_centers)
    return viewmats


@dataclass
class PathSteps:
    """How far each registered camera moved from the previous one, and how much the image changed."""

    rotation_degrees: np.ndarray  # [C - 1] angle between neighbouring orientations
    distance: np.ndarray  # [C - 1] distance between neighbouring centres, world units
    image_change: np.ndarray  # [C - 1] mean abs change of 32x32 thumbnails (colours in 0..1)
    radius: np.ndarray  # [C] distance of each centre from the centres' mean, world units
    still_degrees: float = 0.0  # a turn under this ...
    still_distance: float = 0.0  # ... or a move under this (world units) shifts the image too little to jump

    def paced(self) -> np.ndarray:
        """[C - 1] the steps whose image changed: the footage's pace. A repeated frame (a frame-doubled or paused
        video) is no step of it: the medians the ratios below divide by are taken over the paced steps only, else
        a video with every frame doubled has a median step of 0 and every real step looks long."""
        return self.image_change > DUPLICATE_CHANGE

    def motion_ratios(self) -> np.ndarray:
        """[C - 1] each step against the median step (rotation or distance, the larger); a rotation or a distance
        under its still floor counts as none (a near-static shot; a tripod pan's jittering centres)."""
        paced = self.paced()
        turn = np.where(self.rotation_degrees > self.still_degrees, _relative(self.rotation_degrees, paced), 0.0)
        move = np.where(self.distance > self.still_distance, _relative(self.distance, paced), 0.0)
        return np.maximum(turn, move)

    def ratios(self) -> np.ndarray:
        """[C - 1] :meth:`motion_ratios` over the image change against the median change: ~1 where the cameras
        move as much as the footage does."""
        return self.motion_ratios() / np.maximum(self.change_ratios(), 1.0)

    def change_ratios(self) -> np.ndarray:
        """[C - 1] each image change against the median change."""
        return _relative(self.image_change, self.paced())

    def radius_ratios(self) -> np.ndarray:
        """[C - 1] each camera's distance from the centres' mean over the previous camera's."""
        return self.radius[1:] / np.maximum(self.radius[:-1], 1e-12)


def _relative(x: np.ndarray, paced: np.ndarray) -> np.ndarray:
    """``x`` against its median over the ``paced`` steps (:meth:`PathSteps.paced`; all of them if none is)."""
    return x / max(float(np.median(x[paced] if paced.any() else x)), 1e-12)


def path_steps(cameras: Cameras, thumbs: np.ndarray, still: tuple[float, float] = (0.0, 0.0)) -> PathSteps:
    """Steps of ``cameras`` in frame order; ``thumbs`` [C, D] are the thumbnails of their frames; ``still``:
    the floor (degrees, world units) of :func:`still_step`."""
    rotations = Rotation.from_matrix(cameras.viewmats[:, :3, :3])
    centers = cameras.centers()
    return PathSteps(
        rotation_degrees=np.degrees((rotations[1:] * rotations[:-1].inv()).magnitude()),
        distance=np.linalg.norm(np.diff(centers, axis=0), axis=1),
        image_change=np.abs(np.diff(thumbs, axis=0)).mean(axis=1),
        radius=np.linalg.norm(centers - centers.mean(axis=0), axis=1),
        still_degrees=still[0],
        still_distance=still[1],
    )


def scene_depth(cameras: Cameras, points: np.ndarray) -> float:
    """Median depth (world units) of ``points`` [P, 3] in front of the cameras; 0 when none is."""
    sample = points[:: max(1, len(points) // 2000)]  # [<= 2000, 3]: a median needs no more
    depth = np.einsum("cj,pj->cp", cameras.viewmats[:, 2, :3], sample) + cameras.viewmats[:, 2, 3:4]  # [C, P]
    return float(np.median(depth[depth > 0])) if (depth > 0).any() else 0.0


def still_step(cameras: Cameras, depth: float, shift: float) -> tuple[float, float]:
    """The turn (degrees) and the sideways move (world units, for what lies ``depth`` away) that shift the
    image by ``shift`` times its width, from the cameras' own focal length: a turn or a move under its bound is
    too small to count against the median step, however small that is (:meth:`PathSteps.motion_ratios`)."""
    turn = shift * cameras.width / float(np.median(cameras.Ks[:, 0, 0]))  # radians: f * turn = shift * width
    return float(np.degrees(turn)), turn * depth


def orbit_span_degrees(cameras: Cameras) -> float:
    """Degrees the camera centres sweep around the circle that fits them best, in their best-fit plane."""
    centers = cameras.centers() - cameras.centers().mean(axis=0)
    if len(centers) < 3:
        return 0.0
    _, _, axes = np.linalg.svd(centers)
    planar = centers @ axes[:2].T  # [C, 2]
    # Circle x^2 + y^2 + D x + E y + F = 0 by least squares (Kasa); its centre is (-D/2, -E/2).
    design = np.column_stack([planar, np.ones(len(planar))])
    (d, e, _), *_ = np.linalg.lstsq(design, -(planar**2).sum(axis=1), rcond=None)
    around = planar - np.array([-d / 2, -e / 2])
    angles = np.unwrap(np.arctan2(around[:, 1], around[:, 0]))
    return float(np.degrees(np.abs(angles[-1] - angles[0])))
