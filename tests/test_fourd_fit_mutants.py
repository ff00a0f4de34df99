"""The 4D fit's bookkeeping against references from its definitions, on a tiny grid (seconds, not a fit):
which views train, how many iterations run, the learning-rate schedule, what the large-Gaussian prune
removes, how a deformed render moves the Gaussians, the loss read-out, motion and deformation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dimensionx.errors import DimensionXError
from dimensionx.fourd.config import FourDConfig
from dimensionx.fourd.fit import CPU_ITERATIONS, Fitter, FourDStrategy, render_at, resolve_iterations, split_views
from dimensionx.splats.render import rasterize, scene_scale
from fourd_synthetic import MovingScene, grid_views

WIDTH, HEIGHT = 24, 18  # px: above SSIM's 11 px window
TINY = dict(plane_resolution=4, plane_scales=(1,), plane_features=4, mlp_width=8, densify=False)


def tiny_fitter(iterations: int = 0, deform: bool = True, **settings) -> Fitter:
    torch.manual_seed(0)
    scene = MovingScene(n=20)
    start = scene.at(0.5)
    splats = torch.nn.ParameterDict({
        "means": start["means"].clone(), "quats": start["quats"].clone(), "scales": start["scales"].log(),
        "opacities": torch.logit(start["opacities"]), "sh0": start["sh"].clone(), "shN": torch.zeros(scene.n, 3, 3),
    })
    views = grid_views(scene, 3, 4, WIDTH, HEIGHT, holdout=0)
    config = FourDConfig(**{**TINY, "iterations": iterations, "coarse_iterations": 0, **settings})
    return Fitter(config, splats, views, scene_scale(views.viewmats.numpy()), torch.device("cpu"), deform=deform)


@pytest.mark.parametrize("k, every, held", [(9, 4, [1, 5]), (9, 3, [1, 4, 7]), (5, 0, []), (4, 1, [1, 2, 3])])
def test_held_out_views_are_one_plus_multiples_of_every(k, every, held):
    if len(held) > k - 2:
        with pytest.raises(DimensionXError, match=f"^holdout {every} leaves 1 of {k} views to train on"):
            split_views(k, every)
        return
    assert split_views(k, every) == ([i for i in range(k) if i not in held], held)


def test_two_training_views_are_enough():
    assert split_views(3, 2) == ([0, 2], [1])
    with pytest.raises(DimensionXError, match=r"^holdout 1 leaves 1 of 3 views to train on: set a larger holdout \(every K-th view\) or 0"):
        split_views(3, 1)


@pytest.mark.parametrize("device, settings, expected", [
    ("cpu", {}, (CPU_ITERATIONS, CPU_ITERATIONS // 6)),
    ("cpu", {"iterations": 60}, (60, 10)),
    ("cpu", {"iterations": 60, "coarse_iterations": 100}, (60, 60)),  # never more coarse than total
    ("cpu", {"iterations": 60, "coarse_iterations": 0}, (60, 0)),
    ("cuda", {"mode": "fast"}, (3000, 500)),
    ("cuda", {"mode": "exact", "iterations": 7}, (7, 1)),
])
def test_the_iteration_budget(device, settings, expected):
    assert resolve_iterations(FourDConfig(**settings), torch.device(device)) == expected


def test_a_mode_without_a_budget_is_refused_by_name():
    config = FourDConfig(mode="lowmem", fit_iterations={"exact": 10})
    with pytest.raises(DimensionXError, match=r"fit_iterations has no budget for --mode lowmem .*add `lowmem: N` under fit_iterations"):
        resolve_iterations(config, torch.device("cuda"))


def test_prune_large_removes_only_gaussians_over_the_scale_limit_or_too_faint():
    """Largest axis > prune_scale3d x scene scale, or opacity < prune_opa: removed; the rest stay, in order."""
    scales = torch.tensor([[0.5, 0.5, 0.5], [0.5, 1.2, 0.1], [1.0, 1.0, 1.0], [0.1, 0.1, 0.1], [0.2, 0.2, 1.01]])
    opacity = torch.tensor([0.9, 0.9, 0.9, 0.04, 0.9])
    params = torch.nn.ParameterDict({"means": torch.arange(15.0).view(5, 3), "scales": scales.log(),
                                     "opacities": torch.logit(opacity)})
    optimizers = {k: torch.optim.Adam([{"params": v, "lr": 1e-3, "name": k}]) for k, v in params.items()}
    strategy = FourDStrategy(prune_large=True, prune_scale3d=0.5, prune_opa=0.05)
    state = strategy.initialize_state(scene_scale=2.0)  # the limit: 1.0 world unit
    state.update(grad2d=torch.zeros(5), count=torch.zeros(5), radii=torch.zeros(5))
    assert strategy._prune_gs(params, optimizers, state, step=100) == 3
    torch.testing.assert_close(params["means"][:, 0], torch.tensor([0.0, 6.0]))  # rows 0 and 2 (exactly at the limit)


def test_a_deformed_render_moves_the_gaussians_by_the_field_offsets():
    fitter = tiny_fitter()
    s = fitter.splats
    shift = {"means": torch.tensor([0.3, -0.2, 0.1]), "scales": torch.tensor([0.2, 0.0, -0.1]),
             "quats": torch.tensor([0.1, 0.0, 0.0, 0.0])}
    seen = []

    def field(means, t):
        seen.append(t)
        return {k: v.expand(len(means), -1) for k, v in shift.items()}

    v = fitter.views
    images, _, offsets = render_at(s, field, 0.25, v.viewmats[:2], v.Ks[:2], WIDTH, HEIGHT, fitter.background)
    sh = torch.cat([s["sh0"], s["shN"]], dim=1)  # [N, 4, 3]: degree 1
    expected, _, _ = rasterize(s["means"] + shift["means"], s["quats"] + shift["quats"], torch.exp(s["scales"] + shift["scales"]),
                               torch.sigmoid(s["opacities"]), sh, v.viewmats[:2], v.Ks[:2], WIDTH, HEIGHT, 1, fitter.background)
    assert seen == [0.25]
    torch.testing.assert_close(images, expected)
    torch.testing.assert_close(offsets, shift["means"].expand(len(s["means"]), -1))
    canonical, _, none = render_at(s, None, 0.25, v.viewmats[:2], v.Ks[:2], WIDTH, HEIGHT, fitter.background)
    assert none is None and not torch.allclose(canonical, expected)


def test_learning_rates_follow_the_scene_extent_and_the_means_rate_decays_to_one_percent():
    fitter = tiny_fitter(iterations=4, lr_means=1e-3, lr_colors=2e-3, lr_planes=1e-2, lr_mlp=1e-3)
    extent = fitter.extent
    assert fitter.optimizers["means"].param_groups[0]["lr"] == pytest.approx(1e-3 * extent)
    assert fitter.optimizers["shN"].param_groups[0]["lr"] == pytest.approx(2e-3 / 20)  # 3DGS: the rest of the SH at 1/20
    assert [g["lr"] for g in fitter.field_optimizer.param_groups] == pytest.approx([1e-2 * extent, 1e-3 * extent])
    fitter.train(seed=0, progress=False)
    # exponential from lr to lr / 100 over the run: at the last of 4 steps, lr * 0.01 ** (3 / 4)
    assert fitter.optimizers["means"].param_groups[0]["lr"] == pytest.approx(1e-3 * extent * 0.01 ** 0.75)


def test_the_field_trains_only_after_the_coarse_stage():
    coarse = tiny_fitter(iterations=3, coarse_iterations=3)
    before = [p.detach().clone() for p in coarse.field.parameters()]
    coarse.train(seed=0, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, coarse.field.parameters()))
    fine = tiny_fitter(iterations=3, coarse_iterations=2)
    before = [p.detach().clone() for p in fine.field.parameters()]
    fine.train(seed=0, progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(before, fine.field.parameters()))


def test_the_loss_is_read_as_the_mean_since_the_last_read_and_a_bad_fit_is_refused_by_its_rule():
    fitter = tiny_fitter()
    fitter.loss.loss_sum.fill_(6.0)
    assert fitter._read_loss(step=2) == pytest.approx(2.0)  # steps 0, 1, 2
    fitter.loss.loss_sum.fill_(10.0)
    assert fitter._read_loss(step=54) == pytest.approx(2.0)  # steps 50 .. 54
    fitter.loss.loss_sum.fill_(1.0)
    fitter.loss.non_finite.fill_(1)
    with pytest.raises(DimensionXError, match="diverged by iteration 8 .*lower lr_means or lr_planes"):
        fitter._read_loss(step=7)
    fitter.loss.non_finite.fill_(0)
    for name in list(fitter.splats):
        fitter.splats[name] = torch.nn.Parameter(fitter.splats[name][:0])
    with pytest.raises(DimensionXError, match="every Gaussian was pruned by iteration 8: lower prune_opa"):
        fitter._read_loss(step=7)


def test_losses_are_read_every_50_iterations_and_at_the_end():
    fitter = tiny_fitter(iterations=51, coarse_iterations=51)
    assert len(fitter.train(seed=0, progress=False)) == 2


@torch.no_grad()
def test_motion_and_deformation_are_what_their_docs_say():
    """deformation(t): mean over Gaussians of |offset(t)|; motion: mean over Gaussians of the norm of the
    per-axis standard deviation of the offsets over the grid's times (a constant shift counts nothing)."""
    fitter = tiny_fitter()
    for p in fitter.field.parameters():  # planes too: they start constant along time
        p.normal_(0, 1.0)
    means = fitter.splats["means"]
    times = fitter.views.times.tolist()
    offsets = np.stack([fitter.field(means, t)["means"].double().numpy() for t in times])  # [M, N, 3]
    assert fitter.deformation(times[1]) == pytest.approx(np.linalg.norm(offsets[1], axis=1).mean(), rel=1e-5)
    expected = np.linalg.norm(offsets.std(axis=0, ddof=1), axis=1).mean()
    assert expected > 1e-6 and fitter.motion() == pytest.approx(expected, rel=1e-5)
    still = tiny_fitter(deform=False)
    assert still.motion() == 0.0 and still.deformation(0.5) == 0.0


def test_densification_runs_between_its_fractions_of_the_fit_and_never_resets_opacities():
    fitter = tiny_fitter(iterations=200, densify=True, densify_from=0.1, densify_until=0.7, densify_every=25)
    assert (fitter.strategy.refine_start_iter, fitter.strategy.refine_stop_iter) == (20, 140)
    assert fitter.strategy.reset_every > 200 and fitter.strategy.refine_every == 25
    assert tiny_fitter().strategy is None
    assert math.isclose(fitter.strategy_state["scene_scale"], fitter.extent)
