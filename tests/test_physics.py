"""Degradations: masks, adjointness, seeding, noise levels, GE's lift, and parameter checks."""

import math

import pytest
import torch
from deepinv.physics import Blur, CompressedSensing, Denoising, Downsampling, Inpainting, Physics
from hypothesis import example, given, settings
from hypothesis import strategies as st

from generative_encoder.errors import ConfigError
from generative_encoder.physics import (
    TASKS,
    block_mask,
    freeform_mask,
    lift,
    make_physics,
    match,
    measurement_rate,
    random_mask,
)

SHAPE = (3, 16, 16)
LINEAR = {  # task -> small parameters for SHAPE
    "denoise": {},
    "deblur": {"blur_sigma": 0.8},
    "superres": {"factor": 2},
    "inpaint": {"mask": "random"},
    "cs": {"m": 200},
}
EXPECTED_CLASS = {
    "denoise": Denoising,
    "deblur": Blur,
    "superres": Downsampling,
    "inpaint": Inpainting,
    "cs": CompressedSensing,
}


def small_encoder(m: int = 20) -> torch.nn.Module:
    """(B, 3, 16, 16) -> (B, m)."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, m),
    ).eval()


def images(shape=SHAPE, batch=2, seed=0) -> torch.Tensor:
    return torch.rand(batch, *shape, generator=torch.Generator().manual_seed(seed))


def smooth_image(size: int) -> torch.Tensor:
    """(1, 3, size, size) periodic, band-limited image in [0.25, 0.75]."""
    t = torch.arange(size) / size
    wave = torch.sin(2 * math.pi * t)[None, :] * torch.cos(2 * math.pi * t)[:, None]
    return (0.5 + 0.25 * wave).expand(1, 3, size, size).clone()


def adjoint_error(physics, x: torch.Tensor, v: torch.Tensor) -> float:
    """|<A x, v> - <x, A^T v>| / (||A x|| ||v||): relative to the scale of the inner product, not
    to its value, which a random v can bring arbitrarily close to 0."""
    ax = physics.A(x).double()
    lhs = (ax * v.double()).sum()
    rhs = (x.double() * physics.A_adjoint(v).double()).sum()
    return float((lhs - rhs).abs() / (ax.norm() * v.double().norm()))


# --- masks -----------------------------------------------------------------------------------


def test_block_mask_zeroes_exactly_its_centred_block():
    mask = block_mask(28, 28, 13)  # top-left (7, 7), bottom-right (19, 19)
    assert mask.shape == (28, 28) and mask.dtype == torch.float32
    assert int((mask == 0).sum()) == 13**2
    assert mask[7, 7] == 0 and mask[19, 19] == 0 and mask[7, 19] == 0 and mask[19, 7] == 0
    assert mask[6, 7] == 1 and mask[7, 6] == 1 and mask[20, 19] == 1 and mask[19, 20] == 1


@pytest.mark.parametrize("size, block", [(28, 13), (64, 30)])
def test_default_block_is_30_of_64(size, block):
    physics = make_physics("inpaint", (3, size, size))
    assert physics.mask.shape == (1, 1, size, size)
    assert int((physics.mask == 0).sum()) == block**2


def test_random_mask_fraction_near_missing():
    mask = random_mask(64, 64, 0.3, torch.Generator().manual_seed(0))
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert abs(float((mask == 0).float().mean()) - 0.3) < 0.03


def test_freeform_mask_coverage_and_seeding():
    def make(seed):
        return freeform_mask(64, 64, torch.Generator().manual_seed(seed))

    masks = [make(seed) for seed in range(5)]
    for mask in masks:
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert 0.15 <= float((mask == 0).float().mean()) <= 0.3
    assert torch.equal(make(0), masks[0])
    assert not torch.equal(masks[0], masks[1])
    assert freeform_mask(32, 48, torch.Generator()).shape == (32, 48)


# --- linear operators --------------------------------------------------------------------------


@pytest.mark.parametrize("task", sorted(LINEAR))
def test_adjoint_identity(task):
    physics = make_physics(task, SHAPE, **LINEAR[task])
    assert isinstance(physics, EXPECTED_CLASS[task])
    x = images()
    v = torch.randn_like(physics.A(x))
    assert adjoint_error(physics, x, v) < 1e-4


@pytest.mark.parametrize(
    "task, params",
    [(task, params) for task, params in LINEAR.items()]
    + [("denoise", {"noise": "speckle"}), ("inpaint", {"mask": "freeform"})],
)
def test_same_seed_same_operator_and_noise(task, params):
    params = {**params, "sigma": 0.1}
    x = images()
    first = make_physics(task, SHAPE, seed=3, **params)
    again = make_physics(task, SHAPE, seed=3, **params)
    other = make_physics(task, SHAPE, seed=4, **params)
    torch.manual_seed(0)  # the global RNG plays no part
    y = first(x)
    torch.manual_seed(1)
    assert torch.equal(again(x), y)
    assert not torch.equal(other(x), y)
    state, state_again, state_other = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(state[k], state_again[k]) for k in state)
    if task in ("inpaint", "cs"):  # random operators change with the seed
        key = "mask" if task == "inpaint" else "_A"
        assert not torch.equal(state[key], state_other[key])


@pytest.mark.parametrize(
    "task, params",
    [("denoise", {}), ("deblur", {}), ("superres", {"factor": 2}), ("cs", {"m": 64})],
)
def test_gaussian_noise_level(task, params):
    sigma = 0.05
    physics = make_physics(task, (1, 32, 32), sigma=sigma, **params)
    assert float(physics.noise_model.sigma) == pytest.approx(sigma)
    x = images((1, 32, 32), batch=64)
    residual = physics(x) - physics.A(x)
    assert abs(float(residual.std()) - sigma) < 0.05 * sigma
    assert abs(float(residual.mean())) < 0.1 * sigma


def test_speckle_noise_scales_with_the_image():
    sigma, level = 0.2, 0.5
    physics = make_physics("denoise", (1, 128, 128), noise="speckle", sigma=sigma)
    x = torch.full((4, 1, 128, 128), level)
    residual = physics(x) - x
    assert abs(float(residual.std()) - sigma * level) < 0.05 * sigma * level
    assert torch.equal(physics(torch.zeros_like(x)), torch.zeros_like(x))


def test_inpainting_noise_stays_zero_at_missing_pixels():
    physics = make_physics("inpaint", SHAPE, mask="random", sigma=0.1)
    y = physics(images())
    assert torch.all(y * (1 - physics.mask) == 0)
    assert float(y.abs().sum()) > 0


def test_cs_matrix_is_normalised_and_rate_is_m_over_n():
    physics = make_physics("cs", SHAPE, m=200)
    assert physics._A.shape == (200, math.prod(SHAPE))
    assert abs(float(physics._A.var()) - 1 / 200) < 0.05 / 200  # entries N(0, 1/m)
    assert measurement_rate(physics, SHAPE) == 200 / 768


# --- encoder sensing ----------------------------------------------------------------------------


def test_encoder_cs_is_the_encoder_with_no_parameters_of_its_own():
    encoder = small_encoder()
    physics = make_physics("encoder_cs", SHAPE, encoder=encoder)
    x = images().requires_grad_()
    assert torch.equal(physics.A(x), encoder(x))
    assert torch.equal(physics(x), encoder(x))  # sigma defaults to 0
    assert list(physics.parameters()) == []
    physics.A(x).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert measurement_rate(physics, SHAPE) == 20 / 768


def test_encoder_cs_noise_is_on_the_code():
    encoder = small_encoder()
    physics = make_physics("encoder_cs", SHAPE, encoder=encoder, sigma=0.1, seed=1)
    x = images(batch=256)
    with torch.no_grad():
        residual = physics(x) - encoder(x)
    assert abs(float(residual.std()) - 0.1) < 0.005
    with pytest.raises(ConfigError, match="the code itself is GE's target"):
        lift(physics(x), physics)


# --- GE's lift ---------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["denoise", "deblur"])
def test_lift_is_y_for_denoise_and_deblur(task):
    physics = make_physics(task, SHAPE)
    x = images()
    y = physics(x)
    assert lift(y, physics) is y


def test_match_is_identity_for_denoise_and_the_known_blur_for_deblur():
    x = images()
    assert match(x, make_physics("denoise", SHAPE)) is x
    blur = make_physics("deblur", SHAPE, sigma=0.0)
    torch.testing.assert_close(match(x, blur), blur(x))
    assert (match(x, blur) - x).abs().max() > 0.01  # it does blur


def test_inpaint_match_is_masked_image_and_lift_is_y():
    physics = make_physics("inpaint", SHAPE, mask="freeform")
    x = images()
    y = physics(x)
    assert torch.equal(match(x, physics), physics.mask * x)
    assert torch.equal(match(x, physics), y)  # noiseless: S(x) == y
    assert lift(y, physics) is y


@pytest.mark.parametrize("factor, tolerance", [(2, 1e-4), (4, 1e-3)])
def test_superres_lift_is_bicubic_upsampling_to_g_size(factor, tolerance):
    x = smooth_image(64)
    physics = make_physics("superres", (3, 64, 64), factor=factor)
    x_dagger = lift(physics(x), physics)
    assert x_dagger.shape == x.shape
    assert float(((x_dagger - x) ** 2).mean()) < tolerance
    assert torch.equal(match(x, physics), x_dagger)  # noiseless: both sides, same pipeline
    assert float(x_dagger.min()) >= 0 and float(x_dagger.max()) <= 1


def test_cs_lift_is_pseudo_inverse_and_match_a_projection():
    physics = make_physics("cs", SHAPE, m=200)
    x = images()
    s = match(x, physics)
    assert s.shape == x.shape
    assert torch.allclose(lift(physics(x), physics), s, atol=1e-5)
    assert torch.allclose(match(s, physics), s, atol=1e-4)  # A^+ A is a projection
    assert torch.allclose(physics.A(s), physics.A(x), atol=1e-4)


# --- bad parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("task", sorted(LINEAR))
def test_negative_sigma(task):
    with pytest.raises(ConfigError, match=r"sigma must be >= 0, got -0\.1"):
        make_physics(task, SHAPE, **LINEAR[task], sigma=-0.1)


BAD_PARAMETERS = [  # (task, params, message pattern) for SHAPE = (3, 16, 16)
    (
        "nope",
        {},
        "unknown task 'nope'; known: colorize, cs, deblur, denoise, encoder_cs, inpaint, "
        "quantize, superres",
    ),
    ("inpaint", {"block": 17}, r"block must be between 1 and 16 for a 16x16 image, got 17"),
    ("inpaint", {"block": 16}, r"mask keeps 0 of 256 pixels"),
    ("inpaint", {"mask": "random", "missing": 1.0}, r"missing must be > 0 and < 1, got 1\.0"),
    ("inpaint", {"mask": "freeform", "missing": 0.7}, r"missing must be > 0 and <= 0\.5, got 0\.7"),
    ("inpaint", {"mask": "random", "block": 4}, r"block applies to the block mask"),
    ("inpaint", {"mask": "lasso"}, r"mask must be one of block, random, freeform, got 'lasso'"),
    ("cs", {"m": 769}, r"m must be an integer between 1 and n = C\*H\*W = 768, got 769"),
    ("cs", {}, r"task 'cs' needs parameter m"),
    ("superres", {"factor": 3}, r"factor must divide the image size 16x16, got 3"),
    ("superres", {"factor": 1}, r"factor must be an integer >= 2, got 1"),
    ("deblur", {"blur_sigma": 3.0}, r"blur_sigma=3\.0 needs a 23x23 kernel, larger than the 16x16"),
    ("deblur", {"blur_sigma": 0}, r"blur_sigma must be > 0, got 0"),
    ("denoise", {"noise": "poisson"}, r"noise must be one of gaussian, speckle, got 'poisson'"),
    ("denoise", {"factor": 2}, r"task 'denoise' has no parameter factor; it takes noise, sigma"),
    ("encoder_cs", {"encoder": "E"}, r"encoder must be a torch.nn.Module, got str"),
    ("encoder_cs", {"encoder": torch.nn.Flatten(), "sigma": -1}, r"sigma must be >= 0, got -1"),
    ("denoise", {"noise": "speckle", "sigma": -1}, r"sigma must be >= 0, got -1"),
]


@pytest.mark.parametrize("task, params, message", BAD_PARAMETERS)
def test_bad_parameters(task, params, message):
    with pytest.raises(ConfigError, match=message):
        make_physics(task, SHAPE, **params)


def test_unknown_physics_has_no_lift():
    with pytest.raises(ConfigError, match="GE has no lift for Physics; known: Blur"):
        lift(torch.zeros(1), Physics())


def test_every_task_is_tested():
    assert TASKS.names() == sorted([*LINEAR, "encoder_cs", "colorize", "quantize"])


# --- property: adjointness and linearity over random shapes and parameters ----------------------


@st.composite
def linear_cases(draw):
    task = draw(st.sampled_from(sorted(LINEAR)))
    height, width = 2 * draw(st.integers(6, 12)), 2 * draw(st.integers(6, 12))
    shape = (draw(st.sampled_from([1, 3])), height, width)
    params = {"sigma": draw(st.floats(0, 0.2))}
    if task == "deblur":
        params["blur_sigma"] = draw(st.floats(0.3, 1.2))
    elif task == "superres":
        params["factor"] = 2
    elif task == "inpaint":
        params["mask"] = draw(st.sampled_from(["block", "random"]))
    elif task == "cs":
        params["m"] = draw(st.integers(1, math.prod(shape) // 2))
    return task, shape, params, draw(st.integers(0, 2**31))


@settings(max_examples=30, deadline=None)
@given(linear_cases())
def test_linear_tasks_are_linear_and_adjoint(case):
    task, shape, params, seed = case
    physics = make_physics(task, shape, seed=seed, **params)
    x1, x2 = images(shape, seed=seed % 1000), images(shape, seed=seed % 1000 + 1)
    combined = physics.A(2 * x1 - 3 * x2)
    assert torch.allclose(combined, 2 * physics.A(x1) - 3 * physics.A(x2), atol=1e-4)
    assert adjoint_error(physics, x1, torch.randn_like(physics.A(x1))) < 1e-4
    assert not torch.isnan(physics(x1)).any()


# --- property: valid parameters never give NaN or Inf ------------------------------------------


@st.composite
def degradation_cases(draw):
    """Any task (encoder sensing with a small encoder) with valid parameters, at random shapes."""
    task = draw(st.sampled_from(TASKS.names()))
    side = 2 * draw(st.integers(4, 16))  # 8 to 32
    shape = (draw(st.sampled_from([1, 3])), side, side)
    sigma = draw(st.floats(0, 1))
    params = {"sigma": sigma}
    if task == "denoise":
        params["noise"] = draw(st.sampled_from(["gaussian", "speckle"]))
    elif task == "deblur":
        params["blur_sigma"] = draw(st.floats(0.1, side / 8))
    elif task == "superres":
        params["factor"] = draw(
            st.sampled_from([f for f in (2, 4, 8) if side % f == 0 and side >= 2 * f])
        )
    elif task == "inpaint":
        mask = draw(st.sampled_from(["block", "random", "freeform"]))
        params["mask"] = mask
        if mask == "block":
            params["block"] = draw(st.integers(1, side - 1))
        else:
            high = 0.5 if mask == "freeform" else 0.95
            params["missing"] = draw(st.floats(0.05, high))
    elif task == "cs":
        params["m"] = draw(st.integers(1, math.prod(shape)))
    elif task == "colorize":  # RGB only
        shape = (3, side, side)
    elif task == "quantize":  # deterministic: levels, no sigma
        params = {"levels": draw(st.integers(2, 256))}
    elif task == "encoder_cs":
        params["encoder"] = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(math.prod(shape), 8)
        ).eval()
    image = draw(st.sampled_from(["random", "zeros", "ones"]))
    return task, shape, params, image, draw(st.integers(0, 2**31))


# What make_physics may refuse for parameters inside the drawn ranges: a random or freeform mask
# that keeps every pixel or none on a tiny image, a blur kernel (6 sigma + 1 wide) larger than it.
DOCUMENTED_REFUSALS = ("mask keeps", "kernel, larger than the")


@settings(max_examples=30, deadline=None)
@given(degradation_cases())
@example(("deblur", (1, 10, 10), {"sigma": 0.0, "blur_sigma": 1.25}, "zeros", 0))  # 11 x 11 kernel
def test_degradations_never_give_nan_for_valid_parameters(case):
    task, shape, params, image, seed = case
    try:
        physics = make_physics(task, shape, seed=seed, **params)
    except ConfigError as e:  # the documented refusals of valid-looking parameters
        assert any(reason in str(e) for reason in DOCUMENTED_REFUSALS), str(e)
        return
    x = {
        "random": images(shape, seed=seed % 1000),
        "zeros": torch.zeros(2, *shape),
        "ones": torch.ones(2, *shape),
    }[image]
    with torch.no_grad():
        y = physics(x)
    assert torch.isfinite(y).all()
    if task != "encoder_cs":
        assert torch.isfinite(lift(y, physics)).all()


# --- colorize and quantize (Yeh et al.'s tasks) ---------------------------------------------------


def test_colorize_is_rec601_luma_and_adjoint():
    physics = make_physics("colorize", (3, 2, 2))
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)  # pure red
    assert torch.allclose(physics(x), torch.full((1, 1, 2, 2), 0.299), atol=1e-4)
    x = images((3, 8, 8))
    expected = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
    assert torch.allclose(physics.A(x), expected, atol=1e-4)
    assert adjoint_error(physics, x, torch.randn_like(physics.A(x))) < 1e-4
    y = physics(x)
    assert torch.equal(lift(y, physics), y.expand(-1, 3, -1, -1))  # gray in each channel
    assert torch.allclose(match(x, physics), expected.expand(-1, 3, -1, -1), atol=1e-4)


def test_colorize_refuses_gray_images():
    with pytest.raises(ConfigError, match=r"colorize needs RGB \(3-channel\) images, got 1-"):
        make_physics("colorize", (1, 8, 8))


def test_quantize_rounds_to_k_levels_and_fits_with_identity():
    physics = make_physics("quantize", (1, 2, 4))  # k = 5 by default
    x = torch.tensor([[0.0, 0.1, 0.13, 0.3], [0.62, 0.9, 1.2, -0.1]]).view(1, 1, 2, 4)
    expected = torch.tensor([[0.0, 0.0, 0.25, 0.25], [0.5, 1.0, 1.0, 0.0]]).view(1, 1, 2, 4)
    assert torch.equal(physics(x), expected)
    assert torch.equal(physics.A(x), x) and torch.equal(lift(expected, physics), expected)
    assert isinstance(physics, Denoising)
    assert math.isclose(float(physics.noise_model.sigma), 0.25 / math.sqrt(12), rel_tol=1e-6)
    two = make_physics("quantize", (1, 2, 4), levels=2)
    assert torch.equal(two(x), (x > 0.5).float())
    y = make_physics("quantize", (3, 8, 8), levels=9)(images((3, 8, 8)))
    assert torch.equal(torch.round(y * 8), y * 8) and y.min() >= 0 and y.max() <= 1
    with pytest.raises(ConfigError, match="levels must be an integer >= 2, got 1"):
        make_physics("quantize", (1, 8, 8), levels=1)


def test_superres_refuses_images_smaller_than_its_filter():
    with pytest.raises(ConfigError, match="factor 8 needs images of at least 16 pixels a side"):
        make_physics("superres", (1, 8, 8), factor=8)
    assert make_physics("superres", (1, 16, 16), factor=8)(torch.rand(1, 1, 16, 16)).shape == (
        1,
        1,
        2,
        2,
    )
