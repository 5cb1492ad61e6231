"""The seeds' sibling methods: Yeh et al.'s discriminator prior and Poisson blending, latent vector
recovery with its three box strategies, and the sharpness attribute (LVR-SA)."""

import json

import pytest
import torch
from torch import nn

from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import ModelBundle, load_model
from generative_encoder.methods import METHODS
from generative_encoder.methods.classical import BASELINE_FOR_TASK, _footprint_radius
from generative_encoder.methods.yeh import discriminator_prior, importance_weights
from generative_encoder.physics import make_physics
from generative_encoder.physics.consistency import poisson_blend


class Ramp(nn.Module):
    """A 'generator' whose every output is the same (1, 1, 6, 8) linear ramp in [0.1, 0.8]."""

    latent_dim, latent_dist = 2, "normal"

    def forward(self, z):
        ramp = 0.1 + 0.05 * torch.arange(8.0)[None, :] + 0.02 * torch.arange(6.0)[:, None]
        return ramp.expand(len(z), 1, 6, 8)


# --- Yeh et al. -----------------------------------------------------------------------------------


def test_discriminator_prior_equals_its_formula():
    logit = torch.tensor([-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 30.0], dtype=torch.float64)
    d = torch.sigmoid(logit)
    formula = torch.log(1 - d) - torch.log(d)
    moderate = logit.abs() < 10  # where 1 - D and D are both representable
    assert torch.allclose(discriminator_prior(logit)[moderate], formula[moderate], atol=1e-10)
    assert torch.allclose(discriminator_prior(logit), -logit, atol=1e-12)  # the algebra: = -l
    assert torch.isfinite(discriminator_prior(logit)).all()  # stable at +-30


class ConstantLogit(nn.Module):
    def __init__(self, logit: float):
        super().__init__()
        self.logit = logit
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.scale * torch.full((len(x),), self.logit)


@pytest.mark.parametrize("p", [1, 2])
def test_yeh_objective_is_data_plus_lambda_prior_plus_latent(tiny_model_dir, p):
    model = load_model(tiny_model_dir)
    model = ModelBundle(
        info=model.info, generator=model.generator, discriminator=ConstantLogit(1.5)
    )
    yeh = METHODS.build("yeh", model=model, p=p, disc_weight=0.3, steps=1, restarts=1)
    physics = make_physics("denoise", model.image_shape, sigma=0.1)
    y = physics(torch.rand(2, *model.image_shape))
    loss, networks = yeh.data_term(y, physics, restarts=1)
    z = torch.randn(2, model.generator.latent_dim)
    x = model.generator(z)
    residual = (x - y).abs().flatten(1)
    expected = residual.pow(p).sum(1) + 0.3 * (-1.5)
    assert torch.allclose(loss(x, z), expected, atol=1e-4)
    assert networks == [model.discriminator]
    assert yeh.latent_weight == pytest.approx(0.15)  # lambda (-log N(z; 0, I)) = 0.3 ||z||^2 / 2
    fixed = METHODS.build("yeh", model=model, disc_weight=0.3, latent_weight=0.5)
    assert fixed.latent_weight == 0.5


def test_importance_weights_count_the_missing_neighbours_of_known_pixels():
    mask = torch.ones(1, 1, 9, 9)
    mask[..., 3:6, 3:6] = 0  # a 3 x 3 hole
    weights = importance_weights(mask)[0, 0]
    assert torch.equal(weights[3:6, 3:6], torch.zeros(3, 3))  # missing: 0
    assert weights[2, 2] == pytest.approx(9 / 36)  # 6 x 6 of its window inside, 9 missing
    assert weights[4, 2] == pytest.approx(9 / 42)  # 7 x 6 inside, the whole hole
    assert weights[0, 0] == pytest.approx(1 / 16)  # 4 x 4 inside, one missing pixel
    far = torch.ones(1, 1, 20, 20)
    far[..., 0:3, 0:3] = 0
    assert importance_weights(far)[0, 0, 10:, 10:].abs().max() == 0  # no hole near
    with pytest.raises(ConfigError, match="window must be an odd integer"):
        importance_weights(mask, window=4)


def test_yeh_weights_inpainting_residuals_by_importance(tiny_model_dir):
    model = load_model(tiny_model_dir)
    physics = make_physics("inpaint", model.image_shape, mask="block")
    y = physics(torch.rand(2, *model.image_shape))
    z = torch.randn(2, model.generator.latent_dim)
    x = model.generator(z).detach()
    residual = (physics.A(x) - y).square()
    weights = importance_weights(physics.mask)
    for weighting, expected in (
        ("importance", (residual * weights).flatten(1).sum(1)),
        ("none", residual.flatten(1).sum(1)),
    ):
        yeh = METHODS.build("yeh", model=model, disc_weight=0.0, weighting=weighting)
        loss, _ = yeh.data_term(y, physics, restarts=1)
        torch.testing.assert_close(loss(x, z), expected)


def test_yeh_runs_through_methods_and_keeps_the_discriminator_frozen(tiny_model_dir):
    model = load_model(tiny_model_dir)
    flags = [p.requires_grad for p in model.discriminator.parameters()]
    model.discriminator.train()
    physics = make_physics("inpaint", model.image_shape, mask="block")
    y = physics(torch.rand(3, *model.image_shape))
    for blend in (False, True):
        yeh = METHODS.build("yeh", model=model, steps=5, restarts=2, blend=blend)
        x_hat = yeh(y, physics)
        assert x_hat.shape == (3, *model.image_shape)
        assert 0 <= x_hat.min() and x_hat.max() <= 1
    assert model.discriminator.training  # flags restored after the search
    assert [p.requires_grad for p in model.discriminator.parameters()] == flags
    kept = physics.mask.expand_as(y) > 0
    assert torch.equal(x_hat[kept], y[kept])  # blended: known pixels exactly as observed
    with pytest.raises(ConfigError, match="consistency=blend applies to inpainting only"):
        METHODS.build("yeh", model=model, steps=1, blend=True)(
            y, make_physics("denoise", model.image_shape)
        )
    with pytest.raises(ConfigError, match="p must be 1 or 2"):
        METHODS.build("yeh", model=model, p=3)


def test_yeh_needs_a_discriminator(tiny_model_dir):
    model = load_model(tiny_model_dir)
    bare = ModelBundle(info=model.info, generator=model.generator)
    with pytest.raises(Exception, match="discriminator"):
        METHODS.build("yeh", model=bare)


def test_yeh_uniform_latents_project_to_the_box(uniform_model_dir):
    yeh = METHODS.build("yeh", model=load_model(uniform_model_dir), steps=3, restarts=1)
    assert yeh.latent_weight == 0.0 and yeh.config.clip == "project"


# --- Poisson blending -----------------------------------------------------------------------------


def test_blending_keeps_known_pixels_exactly_and_reproduces_a_ramp():
    ramp = Ramp()(torch.zeros(2, 2))  # (2, 1, 6, 8)
    mask = torch.ones(1, 1, 6, 8)
    mask[..., 1:5, 2:6] = 0  # a 4 x 4 hole
    known = torch.where(mask > 0, ramp, torch.zeros_like(ramp))
    # G(z) = the ramp shifted by a constant: same gradients, so Poisson gives the ramp back
    blended = poisson_blend(ramp + 0.07, known, mask)
    assert torch.equal(blended[mask.expand_as(ramp) > 0], known[mask.expand_as(ramp) > 0])
    assert torch.allclose(blended, ramp, atol=1e-5)
    # any generated content: the known pixels are never touched, the hole is smooth-ish
    noisy = torch.rand(2, 3, 6, 8)
    observed = torch.rand(2, 3, 6, 8)
    out = poisson_blend(noisy, observed, mask)
    assert torch.equal(out[mask.expand_as(out) > 0], observed[mask.expand_as(out) > 0])
    assert 0 <= out.min() and out.max() <= 1


def test_blending_a_hole_at_the_border_and_with_no_boundary():
    g = torch.rand(1, 1, 5, 5)
    mask = torch.zeros(1, 1, 5, 5)
    assert torch.equal(poisson_blend(g, torch.zeros_like(g), mask), g)  # nothing known: G(z)
    mask[..., 2:, :] = 1  # hole: top rows
    y = torch.full_like(g, 0.3)
    out = poisson_blend(torch.full_like(g, 0.9), y, mask)
    assert torch.allclose(out, y, atol=1e-5)  # flat guidance + flat boundary = flat fill


# --- latent vector recovery -----------------------------------------------------------------------


@pytest.mark.parametrize("clip", ["project", "stochastic"])
def test_clipping_keeps_every_component_in_the_box_after_every_step(uniform_model_dir, clip):
    model = load_model(uniform_model_dir)
    physics = make_physics("denoise", model.image_shape, sigma=0.0)
    y = torch.ones(3, *model.image_shape)  # far off the manifold: pulls z out of the box
    lvr = METHODS.build("lvr", model=model, clip=clip, steps=15, restarts=2, lr=0.5)
    seen = []

    def on_step(step, z):
        seen.append(z.abs().max().item())

    result = lvr.solve(y, physics, on_step=on_step)
    assert len(seen) == 15 and max(seen) <= 1.0
    assert result.z.abs().max() <= 1 and result.restart_z.abs().max() <= 1


def test_no_clipping_leaves_the_box(uniform_model_dir):
    model = load_model(uniform_model_dir)
    physics = make_physics("denoise", model.image_shape, sigma=0.0)
    y = torch.ones(3, *model.image_shape)
    seen = []
    METHODS.build("lvr", model=model, clip="none", steps=15, restarts=2, lr=0.5).solve(
        y, physics, on_step=lambda step, z: seen.append(z.abs().max().item())
    )
    assert max(seen) > 1.0  # so that the test above is not vacuous


def test_lvr_runs_and_refuses_normal_latents(uniform_model_dir, tiny_model_dir):
    model = load_model(uniform_model_dir)
    physics = make_physics("superres", model.image_shape, factor=2)
    x_hat = METHODS.build("lvr", model=model, steps=5)(physics(torch.rand(2, 1, 28, 28)), physics)
    assert x_hat.shape == (2, 1, 28, 28)
    with pytest.raises(ConfigError, match="needs a generator trained with uniform latents"):
        METHODS.build("lvr", model=load_model(tiny_model_dir))
    with pytest.raises(ConfigError, match="clip must be one of none, project, stochastic"):
        METHODS.build("lvr", model=model, clip="box")


def test_sharpness_attribute_without_noise_is_near_zero_and_is_stored(uniform_model_dir, tmp_path):
    model = load_model(uniform_model_dir)
    options = dict(steps=150, lr=0.1, restarts=1, n_attribute=64)
    clean = METHODS.build("lvr_sa", model=model, sigma=0.0, **options)
    attribute = clean.sharpness_attribute(0.0)  # (d,)
    assert attribute.shape == (16,)
    # N = 64 true latents have means of std sqrt(1/3) / 8 = 0.07 per component; recovery from a
    # clean image leaves a far smaller bias than that
    assert attribute.abs().mean() < 0.05
    files = sorted((uniform_model_dir / "sharpness").glob("sharpness_*"))
    assert [f.suffix for f in files] == [".json", ".safetensors"]
    record = json.loads(files[0].read_text())["record"]
    assert record["sigma"] == 0.0 and record["n"] == 64
    # a second method object reads the file back instead of solving again
    again = METHODS.build("lvr_sa", model=model, sigma=0.0, **options)
    again.compute_attribute = lambda sigma: pytest.fail("recomputed a stored attribute")
    assert torch.equal(again.sharpness_attribute(0.0), attribute)
    # an explicit cache folder is used instead of the model folder
    elsewhere = METHODS.build("lvr_sa", model=model, sigma=0.0, cache=str(tmp_path), **options)
    elsewhere.compute_attribute = lambda sigma: torch.zeros(16)
    elsewhere.sharpness_attribute(0.0)
    assert len(list(tmp_path.glob("sharpness_*.safetensors"))) == 1


def test_lvr_sa_restores_denoising_inside_the_box(uniform_model_dir, tmp_path):
    model = load_model(uniform_model_dir)
    physics = make_physics("denoise", model.image_shape, sigma=0.2)
    method = METHODS.build("lvr_sa", model=model, steps=5, n_attribute=8, cache=str(tmp_path))
    x_hat = method(physics(torch.rand(2, *model.image_shape)), physics)  # sigma of the physics
    assert x_hat.shape == (2, 1, 28, 28) and 0 <= x_hat.min() and x_hat.max() <= 1
    assert list(method._attributes) == [0.2]
    with pytest.raises(ConfigError, match="applies to denoising with Gaussian noise"):
        inpaint = make_physics("inpaint", model.image_shape)
        method(inpaint(torch.rand(1, 1, 28, 28)), inpaint)


# --- baselines of the new tasks -------------------------------------------------------------------


def test_baselines_of_colorize_and_quantize():
    x = torch.rand(2, 3, 8, 8)
    colorize = make_physics("colorize", (3, 8, 8))
    gray = METHODS.build(BASELINE_FOR_TASK["colorize"])(colorize(x), colorize)
    assert torch.equal(gray, colorize(x).expand(-1, 3, -1, -1).clamp(0, 1))
    quantize = make_physics("quantize", (1, 16, 16))
    smooth = torch.linspace(0, 1, 16).expand(1, 1, 16, 16)
    y = quantize(smooth)
    tv = METHODS.build(BASELINE_FOR_TASK["quantize"])(y, quantize)
    assert ((tv - smooth) ** 2).mean() < ((y - smooth) ** 2).mean()  # TV smooths steps
    sparse = METHODS.build("sparse_dct")(y, quantize)
    assert sparse.shape == y.shape
    superres = make_physics("superres", (1, 8, 8), factor=2)
    assert METHODS.build("sparse_dct")(superres(torch.rand(2, 1, 8, 8)), superres).shape == (
        2,
        1,
        8,
        8,
    )


def test_sparse_dct_patches_grow_by_the_footprint_and_stay_close_to_the_whole_image():
    torch.manual_seed(0)
    like = torch.zeros(1, 1, 8, 8)
    for factor in (2, 4):  # the bicubic filter is 4 factor wide: 2 factor on each side
        superres = make_physics("superres", (1, 32, 32), factor=factor)
        assert _footprint_radius(superres, (1, 32, 32), like) == 2 * factor
    assert (
        _footprint_radius(make_physics("denoise", (1, 32, 32), sigma=0.1), (1, 32, 32), like) == 0
    )
    # a smooth 32 x 32 image: 8-pixel windows grown by the bicubic filter's footprint (wrapping
    # around, as its circular padding does) stay within 3x of coding the whole image at once
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 36, 36), 5, 1)[..., :32, :32]
    superres = make_physics("superres", (1, 32, 32), factor=2)
    y = superres(x)
    mse = {
        p: ((METHODS.build("sparse_dct", patch=p, max_iter=100)(y, superres) - x) ** 2).mean()
        for p in (None, 8)
    }
    assert mse[None] < 0.003 and mse[8] < 3 * mse[None]
    with pytest.raises(ConfigError, match="larger than the image"):
        METHODS.build("sparse_dct", patch=64)(y, superres)
    with pytest.raises(ConfigError, match="patch must be"):
        METHODS.build("sparse_dct", patch=1)


# --- data consistency ---------------------------------------------------------------------------


def test_paste_keeps_the_known_pixels_and_fills_the_hole_with_g(tiny_model_dir):
    model = load_model(tiny_model_dir)
    physics = make_physics("inpaint", model.image_shape, mask="random", seed=3)
    y = physics(torch.rand(3, *model.image_shape))
    plain = METHODS.build("csgm", model=model, steps=5, consistency="none").solve(
        y, physics, seeds=[1, 2, 3]
    )
    pasted = METHODS.build("csgm", model=model, steps=5, consistency="paste").solve(
        y, physics, seeds=[1, 2, 3]
    )
    known = physics.mask.expand_as(y) > 0
    assert torch.equal(pasted.x[known], y[known])
    assert torch.equal(pasted.x[~known], plain.x[~known])
    assert torch.equal(pasted.z, plain.z)  # the search itself is the same


def test_projection_meets_the_measurements_up_to_the_noise(tiny_model_dir):
    """Noise-free 2x super-resolution: the projected image measures exactly y (up to clamping to
    [0, 1]); with noise of known sigma the residual left is the noise's, n sigma^2."""
    from generative_encoder.physics.consistency import back_project

    model = load_model(tiny_model_dir)
    x = torch.rand(4, *model.image_shape) * 0.5 + 0.25  # far from the clamp
    g = torch.full_like(x, 0.5)
    clean = make_physics("superres", model.image_shape, factor=2)
    y = clean(x)
    projected = back_project(g, y, clean)
    assert (clean.A(projected) - y).abs().max() < 1e-4
    noisy = make_physics("superres", model.image_shape, factor=2, sigma=0.02, seed=1)
    y = noisy(x)
    projected = back_project(g, y, noisy)
    residual = (noisy.A(projected) - y).flatten(1).square().sum(1)
    n = y[0].numel()
    torch.testing.assert_close(residual, torch.full_like(residual, n * 0.02**2), rtol=1e-3, atol=0)


def test_consistency_refusals(tiny_model_dir):
    model = load_model(tiny_model_dir)
    with pytest.raises(
        ConfigError, match="consistency must be one of auto, none, paste, blend, project"
    ):
        METHODS.build("ge", model=model, consistency="glue")
    superres = make_physics("superres", model.image_shape, factor=2)
    y = superres(torch.rand(1, *model.image_shape))
    with pytest.raises(ConfigError, match="consistency=paste applies to inpainting only"):
        METHODS.build("ge", model=model, steps=1, consistency="paste").solve(y, superres)
    sensing = make_physics("encoder_cs", model.image_shape, encoder=model.encoder)
    with torch.no_grad():
        y = sensing(torch.rand(1, *model.image_shape))
    with pytest.raises(ConfigError, match="consistency=project needs a linear physics"):
        METHODS.build("csgm", model=model, steps=1, consistency="project").solve(y, sensing)
    with pytest.raises(ConfigError, match="blend=True is consistency='blend'"):
        METHODS.build("yeh", model=model, blend=True, consistency="paste")


def test_auto_consistency_per_task():
    """auto: blend for inpainting, none for every other task (the projection put the noise back
    and cost SSIM on training digits)."""
    from generative_encoder.physics.consistency import resolve_consistency

    shape = (1, 28, 28)
    for task, params in (
        ("superres", {"factor": 2}),
        ("deblur", {}),
        ("cs", {"m": 50}),
        ("denoise", {"sigma": 0.1}),
        ("quantize", {}),
    ):
        assert resolve_consistency("auto", make_physics(task, shape, **params)) == "none"
    assert resolve_consistency("auto", make_physics("inpaint", shape)) == "blend"
    assert resolve_consistency("paste", make_physics("inpaint", shape)) == "paste"
