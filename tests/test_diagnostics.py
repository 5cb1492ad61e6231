"""Fit diagnostics: residuals, discrepancy ratios, the chi-square bound, calibration and flags."""

import math

import pytest
import torch

from generative_encoder.apps.restore import restore
from generative_encoder.eval.diagnostics import (
    SIGMA_FLOOR,
    calibrate,
    chi2_bound,
    discrepancy_ratio,
    flag,
)
from generative_encoder.io.checkpoints import load_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics
from generative_encoder.physics.noise import noise_sigma, residual

SHAPE = (1, 28, 28)


def test_residual_and_ratio_of_a_known_misfit():
    physics = make_physics("denoise", SHAPE, sigma=0.1)
    x = torch.full((2, *SHAPE), 0.5)
    y = x + torch.tensor([0.1, 0.2])[:, None, None, None]
    torch.testing.assert_close(residual(y, physics, x), torch.tensor([784 * 0.01, 784 * 0.04]))
    torch.testing.assert_close(discrepancy_ratio(y, physics, x), torch.tensor([1.0, 4.0]))


def test_the_noise_alone_gives_a_ratio_near_one():
    """n * ratio of the true image is chi-square(n): mean 1, spread sqrt(2 / n) = 0.05."""
    physics = make_physics("denoise", SHAPE, sigma=0.1, seed=3)
    x = torch.rand(64, *SHAPE)
    ratio = discrepancy_ratio(physics(x), physics, x)
    assert abs(ratio.mean().item() - 1) < 0.02
    assert 0.03 < ratio.std().item() < 0.07
    assert (ratio < chi2_bound(784)).float().mean() >= 0.95


def test_noise_sigma_is_known_only_for_additive_gaussian_noise():
    assert noise_sigma(make_physics("denoise", SHAPE, sigma=0.2)) == pytest.approx(0.2)
    assert noise_sigma(make_physics("superres", SHAPE, factor=2, sigma=0.05)) == pytest.approx(0.05)
    assert noise_sigma(make_physics("denoise", SHAPE, noise="speckle", sigma=0.2)) is None
    assert noise_sigma(make_physics("inpaint", SHAPE)) is None  # sigma = 0


def test_noise_free_tasks_compare_with_one_8bit_level():
    physics = make_physics("inpaint", SHAPE)
    x = torch.zeros(1, *SHAPE)
    y = physics(x + SIGMA_FLOOR)  # every kept pixel one level off
    kept = physics.mask.sum().item()
    torch.testing.assert_close(discrepancy_ratio(y, physics, x), torch.tensor([kept / 784]))


def test_chi2_bound():
    # chi2.ppf(0.999, n) / n: a little above the normal approximation 1 + 3.09 sqrt(2 / n)
    assert chi2_bound(784) == pytest.approx(1.1634, abs=1e-3)
    assert 0 < chi2_bound(196) - (1 + 3.09 * math.sqrt(2 / 196)) < 0.03
    assert chi2_bound(10**6) == pytest.approx(1.0, abs=0.005)


def test_flag_marks_large_and_non_finite_ratios():
    ratio = torch.tensor([0.5, 2.9, 3.1, float("nan"), float("inf")])
    assert flag(ratio, 3.0).tolist() == [False, False, True, True, True]


def test_calibration_of_a_perfect_solver_is_three_times_the_noise():
    """A solver that returns the clean generator sample leaves the noise alone: ratio ~ 1, so
    tau = max(chi2 bound, 3 x median) ~ 3; a fixed seed gives a fixed tau."""
    G = torch.nn.Sequential(
        torch.nn.Linear(8, 784), torch.nn.Sigmoid(), torch.nn.Unflatten(1, SHAPE)
    )
    G.latent_dim, G.latent_dist = 8, "normal"
    physics = make_physics("denoise", SHAPE, sigma=0.1)
    truth = {}

    def oracle(y, seeds):  # knows the sample: only to isolate the noise
        return truth["x"]

    with torch.no_grad():
        truth["x"] = G(torch.randn(16, 8, generator=torch.Generator().manual_seed(12345)))
    cal = calibrate(oracle, physics, G, n=16)
    assert cal.tau == pytest.approx(3 * cal.ratios.median().item())
    assert 2.8 < cal.tau < 3.2 and cal.chi2 == pytest.approx(chi2_bound(784))
    assert calibrate(oracle, physics, G, n=16).tau == cal.tau


def test_calibration_is_the_same_in_any_batch_size(model):
    """The fit flag's tau does not depend on --batch-size: samples keep their seeds."""
    physics = make_physics("denoise", model.image_shape, sigma=0.1, seed=1)
    csgm = METHODS.build("csgm", model=model, steps=20)
    solve = lambda y, seeds: restore(y, physics, csgm, seeds=seeds).x  # noqa: E731
    whole = calibrate(solve, physics, model.generator, n=6)
    split = calibrate(solve, physics, model.generator, n=6, batch_size=4)
    torch.testing.assert_close(split.ratios, whole.ratios, atol=1e-6, rtol=0)
    assert split.tau == pytest.approx(whole.tau)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir)


def test_out_of_range_images_are_flagged(model):
    """Generator samples (in range) pass; checkerboards (far from any digit-like sample) are
    flagged, with a tau calibrated on other generator samples."""
    G = model.generator
    physics = make_physics("denoise", model.image_shape, sigma=0.1, seed=1)
    csgm = METHODS.build("csgm", model=model, steps=100, latent_weight=0.0)
    cal = calibrate(lambda y, seeds: restore(y, physics, csgm, seeds=seeds).x, physics, G, n=8)
    with torch.no_grad():
        fakes = G(G.sample_latent(6, torch.Generator().manual_seed(99)))
    board = ((torch.arange(28)[:, None] // 4 + torch.arange(28)[None] // 4) % 2).float()
    boards = torch.stack(
        [board, 1 - board, board.T * 0.8, board * 0.5, 1 - board * 0.7, board.flip(0)]
    )[:, None]
    inside = restore(physics(fakes), physics, csgm, tau=cal.tau)
    outside = restore(physics(boards), physics, csgm, tau=cal.tau)
    assert inside.flagged.sum() <= 1 and outside.flagged.all()
    assert outside.discrepancy.min() > 2 * inside.discrepancy.median()
