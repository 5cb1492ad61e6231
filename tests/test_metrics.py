"""Metrics on pairs whose values are known in closed form."""

import math

import pytest
import torch

from generative_encoder.errors import ConfigError
from generative_encoder.eval.metrics import (
    format_mean_std,
    measurement_residual,
    mse,
    paired_difference,
    psnr,
    score,
    ssim,
    summarize,
)


@pytest.fixture
def x():
    """(2, 1, 28, 28) smooth images in [0.2, 0.8]."""
    ramp = torch.linspace(0.2, 0.8, 28)
    return torch.stack([ramp.outer(torch.ones(28)), torch.ones(28).outer(ramp)])[:, None]


def test_identical_images(x):
    torch.testing.assert_close(mse(x, x), torch.zeros(2))
    torch.testing.assert_close(psnr(x, x), torch.full((2,), 80.0))  # deepinv's 1e-8 floor
    torch.testing.assert_close(ssim(x, x), torch.ones(2))


def test_constant_offset(x):
    torch.testing.assert_close(mse(x + 0.1, x), torch.full((2,), 0.01))
    torch.testing.assert_close(psnr(x + 0.1, x), torch.full((2,), 20.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(psnr(x + 0.1, x, max_pixel=2.0), torch.full((2,), 26.0206))
    assert (ssim(x + 0.1, x) < 1).all()


def test_values_are_per_image():
    x = torch.full((3, 3, 32, 32), 0.5)
    offsets = torch.tensor([0.0, 0.1, 0.01])[:, None, None, None]
    torch.testing.assert_close(mse(x + offsets, x), torch.tensor([0.0, 1e-2, 1e-4]))
    expected = torch.tensor([80.0, 20.0, 40.0])
    torch.testing.assert_close(psnr(x + offsets, x), expected, atol=1e-3, rtol=0)
    noisy = x + torch.tensor([0.0, 0.05, 0.2])[:, None, None, None] * torch.randn(
        x.shape, generator=torch.Generator().manual_seed(0)
    )
    values = ssim(noisy, x)
    assert values.shape == (3,)
    assert values[0] == pytest.approx(1.0) and values[0] > values[1] > values[2]


def test_ssim_sees_structure(x):
    # a reversed ramp has the same histogram but anti-correlated structure: SSIM below 0,
    # while a small brightness shift keeps it near 1
    assert (ssim(x.flip(-2, -1), x) < 0).all()
    assert (ssim(x + 0.02, x) > 0.99).all()


def test_shape_mismatch_is_refused(x):
    with pytest.raises(ConfigError, match=r"\(2, 1, 28, 28\) and \(2, 1, 27, 28\)"):
        psnr(x, x[..., 1:, :])
    with pytest.raises(ConfigError, match=r"\(1, 28, 28\)"):
        ssim(x[0], x[0])
    with pytest.raises(ConfigError, match="max_pixel must be > 0, got 0"):
        psnr(x, x, max_pixel=0)


def test_measurement_residual():
    y = torch.zeros(2, 10)
    y_hat = torch.stack([torch.zeros(10), torch.full((10,), 0.5)])
    torch.testing.assert_close(measurement_residual(y, y_hat), torch.tensor([0.0, 0.25]))
    with pytest.raises(ConfigError, match=r"\(2, 10\) and \(2, 9\)"):
        measurement_residual(y, y_hat[:, 1:])


def test_score(x):
    values = score(x + 0.1, x)
    assert set(values) == {"mse", "psnr", "ssim"}
    torch.testing.assert_close(values["psnr"], psnr(x + 0.1, x))


def test_summarize_and_format():
    summary = summarize(torch.tensor([20.0, 22.0, 24.0, 26.0]))
    assert summary["mean"] == pytest.approx(23.0)
    assert summary["std"] == pytest.approx(math.sqrt(5.0))  # population std
    assert summary["n"] == 4
    assert format_mean_std(summary["mean"], summary["std"], 2) == "23.00 ± 2.24"
    assert format_mean_std(0.91234, 0.01, 3) == "0.912 ± 0.010"
    assert summarize(torch.tensor([7.0])) == {"mean": 7.0, "std": 0.0, "n": 1}
    with pytest.raises(ConfigError, match=r"shape \(0,\)"):
        summarize(torch.tensor([]))
    with pytest.raises(ConfigError, match="digits must be >= 0, got -1"):
        format_mean_std(1.0, 0.1, -1)


def test_paired_difference_matches_scipy_and_says_when_zero_is_inside():
    import scipy.stats

    a = torch.tensor([20.0, 21.0, 23.0, 22.5, 19.0])
    b = torch.tensor([19.5, 20.0, 22.0, 22.4, 18.0])
    d = paired_difference(a, b)
    ref = scipy.stats.ttest_rel(a.numpy(), b.numpy())
    assert d["n"] == 5 and d["mean"] == pytest.approx(0.72)
    assert d["t"] == pytest.approx(ref.statistic)
    low, high = ref.confidence_interval(0.95)
    assert (d["low"], d["high"]) == (pytest.approx(low), pytest.approx(high))
    assert d["low"] > 0  # a consistent gain
    noisy = paired_difference(a, a.flip(0))
    assert noisy["low"] < 0 < noisy["high"]  # within the noise
    with pytest.raises(ConfigError, match="B >= 2"):
        paired_difference(a[:1], b[:1])
