"""Presets per device, MCMC's regularisers, frames from memory, SfM on smaller frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from dimensionx.errors import DimensionXError
from dimensionx.recon.config import ReconConfig, for_device
from dimensionx.recon.frames import load_footage
from dimensionx.recon.pipeline import check_device_settings
from dimensionx.recon.sfm import CameraPrior, recover_cameras
from dimensionx.recon.frames import Footage
from dimensionx.recon.train import rigid_inverse
from recon_synthetic import arc_cameras, intrinsics, render_views, splat_scene, umeyama
from test_recon_train import synthetic_runner


CPU = {"iterations": 300, "max_size": 240, "max_gaussians": 6000, "orbit_frames": 24}  # the CPU defaults, by hand


def test_presets_fill_only_what_is_unset_and_cpu_keeps_its_small_defaults():
    fast = for_device(ReconConfig(preset="fast"), "cuda")
    default = for_device(ReconConfig(), "cuda")
    quality = for_device(ReconConfig(preset="quality"), "cuda")
    assert (default.iterations, default.strategy, default.sfm_max_size, default.refine_stop_iter) == (3000, "default", 480, 2400)
    assert dataclasses.replace(fast, preset="default") == default  # "fast": the default's earlier name
    assert (quality.iterations, quality.sfm_max_size, quality.refine_stop_iter) == (7000, 0, 5000)
    assert default.refine_stop_iter < default.iterations  # densification ends before the last iterations
    assert for_device(ReconConfig(preset="mcmc"), "cuda").strategy == "mcmc"
    assert for_device(ReconConfig(preset="fast"), "cpu") == for_device(ReconConfig(preset="fast", **CPU), "cpu")
    assert for_device(ReconConfig(), "cpu").iterations == 300
    assert for_device(ReconConfig(preset="fast", iterations=1000), "cuda").iterations == 1000  # a flag wins
    with pytest.raises(DimensionXError, match="--preset quick does not exist"):
        for_device(ReconConfig(preset="quick"), "cuda")


def test_mcmc_is_refused_on_cpu_before_training():
    with pytest.raises(DimensionXError, match="mcmc needs CUDA"):
        check_device_settings(for_device(ReconConfig(strategy="mcmc"), "cpu"), torch.device("cpu"))


def test_mcmc_regularisers_add_the_gradient_autograd_gives():
    runner = synthetic_runner(n_points=50, densify=True, strategy="mcmc", opacity_reg=0.3, scale_reg=0.2)
    opacities, scales = runner.splats["opacities"], runner.splats["scales"]
    opacities.grad, scales.grad = torch.ones_like(opacities), torch.zeros_like(scales)
    runner._add_mcmc_regularisers()
    o, s = opacities.detach().clone().requires_grad_(), scales.detach().clone().requires_grad_()
    (0.3 * torch.sigmoid(o).abs().mean() + 0.2 * torch.exp(s).abs().mean()).backward()
    torch.testing.assert_close(opacities.grad, 1 + o.grad)
    torch.testing.assert_close(scales.grad, s.grad)


def test_rigid_inverse_is_the_matrix_inverse():
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix()
    m[:3, 3] = [1.0, -2.0, 0.5]
    np.testing.assert_allclose(rigid_inverse(torch.as_tensor(m)).numpy(), np.linalg.inv(m), atol=1e-12)


def test_frames_from_memory_are_sampled_like_a_folder_of_them(tmp_path):
    rng = np.random.default_rng(0)
    video = np.kron(rng.integers(0, 256, (20, 12, 16, 3)), np.ones((1, 4, 4, 1))).astype(np.uint8)  # [20, 48, 64, 3]
    for i, frame in enumerate(video):
        Image.fromarray(frame).save(tmp_path / f"{i:03d}.png")
    config = ReconConfig(video=str(tmp_path), frames=8, max_size=32)
    from_folder, from_memory = load_footage(config), load_footage(config, video)
    assert from_memory.source_ids.tolist() == from_folder.source_ids.tolist() == [0, 3, 5, 8, 11, 14, 16, 19]
    assert from_memory.images.shape == from_folder.images.shape == (8, 24, 32, 3)
    # PIL (folder) and torch (memory) both average 2x2 blocks of 4x4-px cells: the same colours.
    assert np.abs(from_memory.images.astype(int) - from_folder.images.astype(int)).mean() < 2


@pytest.fixture(scope="module")
def arc():
    """12 views over a 60 degree arc of the synthetic scene, 256x192: ([12, 4, 4] cameras, K, images)."""
    viewmats, K = arc_cameras(12, 60.0), intrinsics(256, 192)
    return viewmats, K, render_views(splat_scene(), viewmats, K, 256, 192)


def test_sfm_on_smaller_frames_gives_cameras_of_the_full_size_frames(tmp_path, arc):
    viewmats, K, images = arc
    footage = Footage(images, np.arange(12), 12, [range(12)], 0, reader=None)
    config = ReconConfig(video="synthetic", sfm_max_size=192, sfm_repairs=0)  # SfM on 192x144 copies
    sfm = recover_cameras(footage, tmp_path / "images", config, CameraPrior())
    assert len(sfm.cameras) == 12 and (sfm.cameras.width, sfm.cameras.height) == (256, 192)
    # The focal length of the 256 px frames (unscaled it would be 25% short): smaller frames pin it down
    # less closely than full ones (1% at 256 px; 3.4-3.6% measured at 192 px, seeds 0-2; centres 0.07).
    assert abs(sfm.cameras.Ks[0, 0, 0] / K[0, 0] - 1) < 0.06
    camera = next(iter(sfm.reconstruction.cameras.values()))
    assert (camera.width, camera.height) == (256, 192)
    assert Image.open(tmp_path / "images" / "frame_00000.png").size == (256, 192)  # the scene keeps full frames
    true_centers = -np.einsum("cji,cj->ci", viewmats[:, :3, :3], viewmats[:, :3, 3])
    s, R, t = umeyama(sfm.cameras.centers(), true_centers)
    assert np.abs(s * sfm.cameras.centers() @ R.T + t - true_centers).max() < 0.15  # 4% of the arc's radius


def test_the_global_mapper_recovers_known_cameras_too(tmp_path, arc):
    viewmats, K, images = arc
    footage = Footage(images, np.arange(12), 12, [range(12)], 0, reader=None)
    sfm = recover_cameras(footage, tmp_path / "images", ReconConfig(video="synthetic", mapper="global", sfm_repairs=0),
                          CameraPrior())
    assert len(sfm.cameras) == 12 and sfm.models_found == 1
    true_centers = -np.einsum("cji,cj->ci", viewmats[:, :3, :3], viewmats[:, :3, 3])
    s, R, t = umeyama(sfm.cameras.centers(), true_centers)
    assert np.abs(s * sfm.cameras.centers() @ R.T + t - true_centers).max() < 0.1  # 2.5% of the arc's radius
