"""The CPU reference renderer against a brute-force per-pixel evaluation written here from the 3DGS
equations (Kerbl et al. 2023, EWA splatting): no tiles, no culling, every Gaussian at every pixel."""

from __future__ import annotations

import math

import pytest
import torch

from dimensionx.splats.render import rasterize

WIDTH, HEIGHT = 40, 32  # px
SH_Y00 = 1 / (2 * math.sqrt(math.pi))  # the degree-0 real spherical harmonic
SH_Y1 = math.sqrt(3 / (4 * math.pi))  # degree 1: the harmonics are -SH_Y1 y, SH_Y1 z, -SH_Y1 x (3DGS's order and signs)


def rotation(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternion (w, x, y, z) -> 3x3 rotation, from the Rodrigues form R = I + 2w[v]x + 2[v]x^2."""
    q = q / q.norm()
    w, v = q[0], q[1:]
    cross = torch.tensor([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]], dtype=q.dtype)
    return torch.eye(3, dtype=q.dtype) + 2 * w * cross + 2 * cross @ cross


def brute_force(means, quats, scales, opacities, colours, viewmat, K, background=None):
    """[H, W, 3] colour and [H, W] alpha of one camera, float64, from the equations:

    p = R_w mu + t (camera space), u = (fx x/z + cx, fy y/z + cy), J = d u / d p,
    Sigma = R S S^T R^T, Sigma_2D = J R_w Sigma R_w^T J^T + 0.3 I,
    alpha_i(pixel) = min(0.999, o_i exp(-d^T Sigma_2D^-1 d / 2)), d = pixel centre - u, terms under 1/255 dropped,
    C = sum_i c_i alpha_i prod_{j<i} (1 - alpha_j) over the Gaussians sorted near to far.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    Rw, t = viewmat[:3, :3], viewmat[:3, 3]
    ys, xs = torch.meshgrid(torch.arange(HEIGHT, dtype=torch.float64), torch.arange(WIDTH, dtype=torch.float64),
                            indexing="ij")
    pixels = torch.stack([xs + 0.5, ys + 0.5], -1)  # [H, W, 2] pixel centres
    layers = []
    for mu, q, s, o, c in zip(means, quats, scales, opacities, colours):
        x, y, z = Rw @ mu + t
        J = torch.tensor([[fx / z, 0.0, -fx * x / z**2], [0.0, fy / z, -fy * y / z**2]], dtype=torch.float64)
        R = rotation(q)
        sigma = R @ torch.diag(s**2) @ R.T
        sigma_2d = J @ Rw @ sigma @ Rw.T @ J.T + 0.3 * torch.eye(2, dtype=torch.float64)
        d = pixels - torch.stack([fx * x / z + cx, fy * y / z + cy])
        power = -0.5 * torch.einsum("hwi,ij,hwj->hw", d, torch.linalg.inv(sigma_2d), d)
        alpha = (o * torch.exp(power)).clamp_max(0.999)
        layers.append((float(z), torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha)), c))
    image = torch.zeros(HEIGHT, WIDTH, 3, dtype=torch.float64)
    transmittance = torch.ones(HEIGHT, WIDTH, dtype=torch.float64)
    for _, alpha, c in sorted(layers, key=lambda layer: layer[0]):
        image += (alpha * transmittance)[..., None] * c
        transmittance = transmittance * (1 - alpha)
    if background is not None:
        image += transmittance[..., None] * background
    return image, 1 - transmittance


def look_at(eye, target) -> torch.Tensor:
    """4x4 world-to-camera, OpenCV axes (x right, y down, z forward)."""
    forward = torch.nn.functional.normalize(target - eye, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, torch.tensor([0.0, -1.0, 0.0], dtype=eye.dtype)), dim=0)
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward])
    viewmat = torch.eye(4, dtype=eye.dtype)
    viewmat[:3, :3], viewmat[:3, 3] = R, -R @ eye
    return viewmat


@pytest.fixture
def scene():
    """Five anisotropic, rotated, overlapping Gaussians in front of a camera that looks at them from the side."""
    g = torch.Generator().manual_seed(4)
    means = torch.rand(5, 3, generator=g, dtype=torch.float64) * 0.8 - 0.4
    quats = torch.randn(5, 4, generator=g, dtype=torch.float64)
    scales = torch.tensor([[0.25, 0.05, 0.1], [0.06, 0.2, 0.04], [0.15, 0.15, 0.02], [0.3, 0.04, 0.08],
                           [0.1, 0.12, 0.2]], dtype=torch.float64)
    opacities = torch.tensor([0.8, 0.6, 0.7, 0.5, 0.75], dtype=torch.float64)
    colours = torch.rand(5, 3, generator=g, dtype=torch.float64)
    viewmat = look_at(torch.tensor([0.6, -0.3, -1.4], dtype=torch.float64), torch.tensor([0.1, 0.05, 0.0], dtype=torch.float64))
    K = torch.tensor([[38.0, 0, 21.0], [0, 36.0, 15.0], [0, 0, 1]], dtype=torch.float64)
    return means, quats, scales, opacities, colours, viewmat, K


def render(means, quats, scales, opacities, colours, viewmat, K, background=None):
    """Our renderer in float32 at SH degree 0 (colour = SH_Y00 * coefficient + 0.5)."""
    sh = ((colours - 0.5) / SH_Y00)[:, None, :]  # [N, 1, 3]
    f = torch.float32
    image, alpha, info = rasterize(means.to(f), quats.to(f), scales.to(f), opacities.to(f), sh.to(f), viewmat[None].to(f),
                                   K[None].to(f), WIDTH, HEIGHT, 0, None if background is None else background.to(f))
    return image[0].double(), alpha[0, ..., 0].double(), info


def test_reference_renderer_matches_the_3dgs_equations_pixel_by_pixel(scene):
    image, alpha, _ = render(*scene)
    want_image, want_alpha = brute_force(*scene)
    assert float(want_alpha.max()) > 0.9 and float((want_alpha > 0.05).double().mean()) > 0.3  # overlaps fill the view
    torch.testing.assert_close(alpha, want_alpha, rtol=0, atol=2e-4)
    torch.testing.assert_close(image, want_image, rtol=0, atol=2e-4)


def test_reference_renderer_composites_over_the_background_by_transmittance(scene):
    background = torch.tensor([0.1, 0.9, 0.3], dtype=torch.float64)
    image, _, _ = render(*scene, background=background)
    want_image, _ = brute_force(*scene, background=background)
    torch.testing.assert_close(image, want_image, rtol=0, atol=2e-4)


def test_a_gaussian_behind_the_camera_is_not_drawn(scene):
    means, quats, scales, opacities, colours, viewmat, K = scene
    behind = 2 * torch.tensor([0.6, -0.3, -1.4], dtype=torch.float64) - means[:1]  # mirrored through the camera
    image, alpha, info = render(torch.cat([means, behind]), torch.cat([quats, quats[:1]]), torch.cat([scales, scales[:1]]),
                                torch.cat([opacities, opacities[:1]]), torch.cat([colours, colours[:1]]), viewmat, K)
    want_image, want_alpha = brute_force(*scene)
    torch.testing.assert_close(alpha, want_alpha, rtol=0, atol=2e-4)
    assert info["radii"][0, -1].tolist() == [0, 0]


def test_render_info_reads_by_key_as_gsplats_strategies_read_it(scene):
    _, _, info = render(*scene)
    assert "means2d" in info and "radii" in info and "absgrad" not in info
    assert info["means2d"] is info.means2d and info["gaussian_ids"] is None
    assert (info["width"], info["height"], info["n_cameras"]) == (WIDTH, HEIGHT, 1)
    with pytest.raises(KeyError):
        info["absgrad"]


def test_view_dependent_colour_follows_the_direction_from_the_camera_centre(scene):
    """Degree-1 SH: a Gaussian's colour is 0.5 + Y00 c0 - Y1 y c1 + Y1 z c2 - Y1 x c3 (clamped at 0), (x, y, z) the
    unit direction from the camera's eye to the Gaussian; one Gaussian at a time, so its image is colour x alpha."""
    means, quats, scales, opacities, _, viewmat, K = scene
    eye = torch.tensor([0.6, -0.3, -1.4], dtype=torch.float64)  # where the fixture's camera stands
    sh = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 0.4  # [N, 4, 3]
    f = torch.float32
    for i in range(len(means)):
        one = [t[i : i + 1].to(f) for t in (means, quats, scales, opacities, sh)]
        image, alpha, _ = rasterize(*one, viewmat[None].to(f), K[None].to(f), WIDTH, HEIGHT, 1)
        x, y, z = (means[i] - eye) / (means[i] - eye).norm()
        c = sh[i]
        want = (0.5 + SH_Y00 * c[0] - SH_Y1 * y * c[1] + SH_Y1 * z * c[2] - SH_Y1 * x * c[3]).clamp_min(0)  # [3]
        covered = alpha[0, ..., 0] > 0.2
        assert covered.any()
        got = image[0][covered] / alpha[0][covered]  # [P, 3]
        torch.testing.assert_close(got.double(), want.expand_as(got), rtol=0, atol=1e-4)
