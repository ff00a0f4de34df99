"""The CPU reference renderer follows gsplat: same projection, SH colours, compositing and gradients."""

from __future__ import annotations

import pytest
import torch

from dimensionx.splats.gaussians import rgb_to_sh
from dimensionx.splats.render import eval_sh, gsplat_rasterization, project, rasterize, reference_rasterization
from recon_synthetic import arc_cameras, intrinsics


def random_splats(n: int = 300, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g) * 0.6,
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.rand(n, 3, generator=g) * 0.1 + 0.01,
        "opacities": torch.rand(n, generator=g),
        "sh": torch.randn(n, 16, 3, generator=g) * 0.3,
    }


def cameras(n: int, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    viewmats = torch.as_tensor(arc_cameras(n, 60.0), dtype=torch.float32)
    return viewmats, torch.as_tensor(intrinsics(width, height), dtype=torch.float32).expand(n, 3, 3)


def test_projection_and_sh_match_gsplats_own_torch_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics

    s = random_splats()
    viewmats, Ks = cameras(3, 64, 48)
    covars, _ = _quat_scale_to_covar_preci(s["quats"], s["scales"], compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(s["means"], covars, viewmats, Ks, 64, 48)
    ours = project(s["means"], s["quats"], s["scales"], torch.ones(300), viewmats, Ks, 64, 48)
    visible = (radii > 0).all(-1)
    assert torch.equal(visible, (ours[3] > 0).all(-1))
    torch.testing.assert_close(ours[0][visible], means2d[visible], rtol=1e-5, atol=1e-4)  # px
    torch.testing.assert_close(ours[1][visible], conics[visible], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours[2], depths)
    dirs = torch.randn(3, 300, 3)
    for degree in range(4):
        expected = _spherical_harmonics(degree, dirs, s["sh"].expand(3, -1, -1, -1))
        torch.testing.assert_close(eval_sh(dirs, s["sh"], degree), expected, rtol=1e-5, atol=1e-6)


def test_one_gaussian_renders_its_colour_at_its_projection():
    K = torch.tensor([[50.0, 0, 20], [0, 50, 16], [0, 0, 1]])[None]
    colour = torch.tensor([0.9, 0.2, 0.1])
    sh = torch.zeros(1, 1, 3)
    sh[0, 0] = rgb_to_sh(colour)
    # A camera at the origin looking down +z; the Gaussian 5 units ahead, 1 unit right (10 px).
    image, alpha, info = reference_rasterization(
        torch.tensor([[1.0, 0.0, 5.0]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.2),
        torch.tensor([0.999]), sh, torch.eye(4)[None], K, 40, 32, sh_degree=0)
    peak = divmod(int(alpha[0, ..., 0].argmax()), 40)
    assert peak in {(15, 29), (15, 30), (16, 29), (16, 30)}  # the pixels around (30, 16) px
    torch.testing.assert_close(info["means2d"][0, 0], torch.tensor([30.0, 16.0]))
    torch.testing.assert_close(image[0, 16, 30], colour * alpha[0, 16, 30], atol=1e-3, rtol=0)
    assert float(alpha.max()) > 0.9 and float(alpha[0, 0, 0]) == 0.0  # opaque near the centre, nothing in a corner


def test_background_fills_what_splats_leave_uncovered():
    s = random_splats(50)
    viewmats, Ks = cameras(1, 32, 24)
    background = torch.tensor([0.2, 0.4, 0.6])
    image, alpha, _ = rasterize(s["means"], s["quats"], s["scales"], s["opacities"], s["sh"], viewmats, Ks, 32, 24,
                                sh_degree=3, background=background)
    plain, _, _ = rasterize(s["means"], s["quats"], s["scales"], s["opacities"], s["sh"], viewmats, Ks, 32, 24, 3)
    torch.testing.assert_close(image, plain + (1 - alpha) * background)


def test_gradients_reach_every_parameter_and_the_image_plane_means():
    s = {k: v.clone().requires_grad_() for k, v in random_splats(100).items()}
    viewmats, Ks = cameras(2, 32, 24)
    image, _, info = reference_rasterization(s["means"], s["quats"], s["scales"], s["opacities"], s["sh"],
                                             viewmats, Ks, 32, 24, sh_degree=3)
    info["means2d"].retain_grad()
    image.square().mean().backward()
    for name, tensor in s.items():
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0, name
    assert info["means2d"].grad.shape == (2, 100, 2) and info["radii"].shape == (2, 100, 2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: gsplat has no CPU rasterizer")
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_reference_renderer_matches_gsplat_on_cuda(mode):
    from gsplat import rasterization

    width, height = 160, 120
    s = {k: v.cuda().requires_grad_() for k, v in random_splats(2000, seed=1).items()}
    viewmats, Ks = (x.cuda() for x in cameras(4, width, height))
    args = (s["means"], s["quats"], s["scales"], s["opacities"], s["sh"], viewmats, Ks, width, height)
    ours, ours_alpha, _ = reference_rasterization(*args, sh_degree=3, rasterize_mode=mode)
    theirs, theirs_alpha, _ = rasterization(*args[:5], viewmats=viewmats, Ks=Ks, width=width, height=height,
                                            sh_degree=3, packed=False, rasterize_mode=mode)
    image_error = (ours - theirs).detach().abs()
    grads = {}
    for name in s:
        g_ours = torch.autograd.grad(ours.square().sum(), s[name], retain_graph=True)[0]
        g_theirs = torch.autograd.grad(theirs.square().sum(), s[name], retain_graph=True)[0]
        grads[name] = float((g_ours - g_theirs).norm() / g_theirs.norm().clamp_min(1e-12))
    print(f"\nreference vs gsplat, 4 views 160x120, 2000 Gaussians: max |colour diff| {float(image_error.max()):.2e}, "
          f"mean {float(image_error.mean()):.2e}, "
          f"max |alpha diff| {float((ours_alpha - theirs_alpha).detach().abs().max()):.2e}; "
          f"relative gradient error {grads}")
    assert float(image_error.max()) < 1e-3 and float(image_error.mean()) < 1e-5
    assert all(err < 1e-2 for err in grads.values()), grads


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: gsplat has no CPU rasterizer")
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_gsplat_stages_render_what_gsplat_rasterization_renders(mode):
    from gsplat import rasterization

    width, height = 160, 120
    s = {k: v.cuda().requires_grad_() for k, v in random_splats(2000, seed=2).items()}
    viewmats, Ks = (x.cuda() for x in cameras(2, width, height))
    backgrounds = torch.tensor([0.2, 0.4, 0.6], device="cuda").expand(2, 3)
    args = (s["means"], s["quats"], s["scales"], s["opacities"], s["sh"])
    ours, ours_alpha, ours_info = gsplat_rasterization(*args, viewmats, Ks, width, height, 3, backgrounds,
                                                       rasterize_mode=mode)
    theirs, theirs_alpha, theirs_info = rasterization(*args, viewmats=viewmats, Ks=Ks, width=width, height=height,
                                                      sh_degree=3, backgrounds=backgrounds, packed=False,
                                                      rasterize_mode=mode)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours_alpha, theirs_alpha, rtol=0, atol=1e-6)
    assert torch.equal(ours_info["radii"], theirs_info["radii"])
    for name in s:
        g_ours = torch.autograd.grad(ours.square().sum(), s[name], retain_graph=True)[0]
        g_theirs = torch.autograd.grad(theirs.square().sum(), s[name], retain_graph=True)[0]
        assert float((g_ours - g_theirs).norm() / g_theirs.norm()) < 1e-4, name


def test_antialiased_opacities_match_gsplats_own_torch_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    s = random_splats()
    s["scales"] = s["scales"] * 0.2  # many splats under a pixel, where the compensation matters
    viewmats, Ks = cameras(3, 64, 48)
    covars, _ = _quat_scale_to_covar_preci(s["quats"], s["scales"], compute_preci=False)
    radii, _, _, _, compensations = _fully_fused_projection(s["means"], covars, viewmats, Ks, 64, 48,
                                                            calc_compensations=True)
    _, _, _, ours_radii, seen = project(s["means"], s["quats"], s["scales"], s["opacities"], viewmats, Ks, 64, 48,
                                        antialiased=True)
    visible = (ours_radii > 0).all(-1)
    assert visible.sum() > 100 and float(compensations[visible].min()) < 0.5
    torch.testing.assert_close(seen[visible], (s["opacities"] * compensations)[visible], rtol=1e-4, atol=1e-6)
    _, _, _, _, classic = project(s["means"], s["quats"], s["scales"], s["opacities"], viewmats, Ks, 64, 48)
    torch.testing.assert_close(classic, s["opacities"].expand(3, -1))


@pytest.mark.parametrize("mode, blur", [("antialiased", 0.0), ("classic", 0.3)])
def test_a_splat_under_a_pixel_keeps_its_weight_only_when_antialiased(mode, blur):
    """A round splat of 0.3 px standard deviation: the 0.3 px^2 blur spreads it to 0.62 px. Its alpha summed over
    the image is opacity * 2 pi sigma^2 (the integral of the Gaussian) with sigma^2 = 0.09 px^2 when
    antialiased, and with sigma^2 = 0.39 px^2, 4.3x brighter, in classic mode (measured: 0.992 of it in both;
    the rest is where the alpha falls under 1/255)."""
    K = torch.tensor([[50.0, 0, 20], [0, 50, 16], [0, 0, 1]])[None]
    opacity = 0.9
    _, alpha, _ = rasterize(torch.tensor([[0.0, 0.0, 5.0]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.03),
                            torch.tensor([opacity]), torch.zeros(1, 1, 3), torch.eye(4)[None], K, 40, 32, sh_degree=0,
                            rasterize_mode=mode)
    expected = opacity * 2 * torch.pi * (0.3**2 + blur)  # px^2 of full alpha
    assert abs(float(alpha.sum()) / expected - 0.99) < 0.02, float(alpha.sum()) / expected
