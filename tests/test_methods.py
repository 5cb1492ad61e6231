import pytest
import torch

from generative_encoder.errors import ConfigError
from generative_encoder.eval.metrics import mse
from generative_encoder.io.checkpoints import load_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir)


@pytest.fixture(scope="module")
def fakes(model):
    """Images the generator itself makes: in its range, so a solver can reach them exactly."""
    G = model.generator
    with torch.no_grad():
        return G(G.sample_latent(4, torch.Generator().manual_seed(7)))


def test_ge_and_csgm_recover_generated_images():
    """The GE preprint's "fake image" case (its Table 2): images the shipped generator made are in
    its range, so only the solver's error is left. CSGM gets them back to MSE <= 1e-3; GE, which
    sees them only through the encoder's 64 numbers, to <= 2e-3 (measured: 1.2e-3; real test
    digits are at about 5e-3, two test digits of different classes 0.14 apart on average)."""
    from generative_encoder.io.zoo import shipped_model

    model = shipped_model()
    G = model.generator
    with torch.no_grad():
        fakes = G(G.sample_latent(6, torch.Generator().manual_seed(7)))
    sensing = make_physics("encoder_cs", model.image_shape, encoder=model.encoder)
    denoise = make_physics("denoise", model.image_shape, sigma=0.0)
    with torch.no_grad():
        codes, y = sensing(fakes), denoise(fakes)
    # the encoder's landscape has local minima: GE needs more random starts than CSGM does
    ge = METHODS.build("ge", model=model, restarts=8, latent_weight=1e-2)
    csgm = METHODS.build("csgm", model=model, restarts=2, latent_weight=0.0)
    assert mse(ge(codes, sensing), fakes).mean() <= 2e-3
    assert mse(csgm(y, denoise), fakes).mean() <= 1e-3


def test_chosen_restart_has_lowest_objective(model, fakes):
    physics = make_physics("inpaint", model.image_shape, mask="block")
    result = METHODS.build("ge", model=model, steps=30, restarts=3).solve(physics(fakes), physics)
    assert torch.equal(result.objective, result.restart_objective.min(dim=1).values)
    chosen = result.restart_objective.argmin(1)
    assert torch.equal(result.z, result.restart_z[torch.arange(4), chosen])


def test_problem_alone_equals_problem_in_batch_of_64(model):
    """Networks run in eval mode, so a problem does not see its batch-mates (no BatchNorm leak)."""
    G = model.generator
    with torch.no_grad():
        x = G(G.sample_latent(64, torch.Generator().manual_seed(3)))
    physics = make_physics("denoise", model.image_shape, sigma=0.1, seed=1)
    y = physics(x)
    method = METHODS.build("ge", model=model, steps=40)
    batch = method.solve(y, physics, seeds=range(100, 164))
    alone = method.solve(y[37:38], physics, seeds=[137])
    torch.testing.assert_close(alone.z[0], batch.z[37], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone.x[0], batch.x[37], atol=1e-5, rtol=1e-4)


def test_methods_never_see_the_clean_image(model, fakes):
    """Same measurements -> same answer, whatever the clean images were."""
    physics = make_physics("denoise", model.image_shape, sigma=0.1)
    y = physics(fakes)
    a = METHODS.build("csgm", model=model, steps=20)(y, physics)
    b = METHODS.build("csgm", model=model, steps=20)(y.clone(), physics)
    assert torch.equal(a, b)


def test_autoencoder_is_decoder_of_encoder(model, fakes):
    physics = make_physics("superres", model.image_shape, factor=2)
    y = physics(fakes)
    up = torch.nn.functional.interpolate(y, scale_factor=2, mode="bicubic").clamp(0, 1)
    with torch.no_grad():
        expected = model.decoder(model.encoder(up))
    torch.testing.assert_close(METHODS.build("autoencoder", model=model)(y, physics), expected)


def test_bad_options(model):
    with pytest.raises(ConfigError, match="latent_weight must be >= 0"):
        METHODS.build("ge", model=model, latent_weight=-1)
    with pytest.raises(ConfigError, match="lr must be > 0"):
        METHODS.build("csgm", model=model, lr=0)
    with pytest.raises(ConfigError, match="unknown method 'magic'; known: .*ge"):
        METHODS.build("magic", model=model)


def test_auto_lambda_follows_the_discrepancy_principle(model, fakes):
    """sigma known: for each problem, the largest lambda of the grid whose ratio is <= 1.1 x
    max(1, its smallest), and the answer is that lambda's solve."""
    from generative_encoder.methods.latent import CSGM
    from generative_encoder.solve.weight import AUTO_GRID, DISCREPANCY_TAU

    physics = make_physics("denoise", model.image_shape, sigma=0.1, seed=2)
    y = physics(fakes)
    method = METHODS.build("csgm", model=model, steps=30, latent_weight="auto")
    result = method.solve(y, physics, seeds=[5, 6, 7, 8])
    auto = method.last_auto
    assert auto.rule == "discrepancy" and len(auto.scores) == len(auto.chosen) == 4
    assert auto.grid == pytest.approx([CSGM.default_latent_weight * g for g in AUTO_GRID])
    for j, (scores, weight) in enumerate(zip(auto.scores, auto.chosen)):
        target = DISCREPANCY_TAU * max(1.0, min(scores))
        chosen = auto.grid.index(weight)
        assert scores[chosen] <= target
        assert all(s > target for s in scores[chosen + 1 :])
        fixed = METHODS.build("csgm", model=model, steps=30, latent_weight=weight)
        direct = fixed.solve(y[j : j + 1], physics, seeds=[5 + j])
        torch.testing.assert_close(result.z[j : j + 1], direct.z, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            result.objective[j : j + 1], direct.objective, atol=1e-5, rtol=1e-4
        )


def test_auto_lambda_holds_out_pixels_without_noise(model, fakes):
    physics = make_physics("inpaint", model.image_shape, mask="block")
    method = METHODS.build("ge", model=model, steps=10, latent_weight="auto")
    result = method.solve(physics(fakes), physics)
    auto = method.last_auto
    assert auto.rule == "held_out" and len(auto.scores) == len(auto.chosen) == len(fakes)
    for scores, weight in zip(auto.scores, auto.chosen):
        assert len(scores) == len(auto.grid) == 5
        assert weight == auto.grid[max(i for i, s in enumerate(scores) if s <= min(scores))]
    assert result.x.shape == fakes.shape


@pytest.mark.parametrize("task", ["denoise", "inpaint"])
def test_auto_lambda_is_chosen_per_problem(model, fakes, task):
    """The same problem gets the same lambda and image alone as in a batch of 4."""
    params = {"sigma": 0.1} if task == "denoise" else {"mask": "block"}
    physics = make_physics(task, model.image_shape, seed=2, **params)
    y = physics(fakes)
    method = METHODS.build("ge", model=model, steps=10, latent_weight="auto")
    batch = method.solve(y, physics, seeds=[3, 4, 5, 6])
    chosen = method.last_auto.chosen
    for j in (0, 3):
        alone = method.solve(y[j : j + 1], physics, seeds=[3 + j])
        assert method.last_auto.chosen == [chosen[j]]
        torch.testing.assert_close(alone.x, batch.x[j : j + 1], atol=1e-5, rtol=0)


def test_auto_lambda_refusals(model, fakes):
    with pytest.raises(ConfigError, match="a number >= 0 or 'auto'"):
        METHODS.build("ge", model=model, latent_weight="big")
    physics = make_physics("superres", model.image_shape, factor=2)  # noise-free, not inpainting
    y = physics(fakes)
    with pytest.raises(ConfigError, match="needs a known noise level"):
        METHODS.build("ge", model=model, steps=2, latent_weight="auto").solve(y, physics)
    # CSGM reads A only: it holds out measured entries of any task
    method = METHODS.build("csgm", model=model, steps=2, latent_weight="auto")
    method.solve(y, physics)
    assert method.last_auto.rule == "held_out"


# Every latent-search method of the registry, with the options that make it search (a uniform-latent
# model for LVR); "auto" lambda too. One problem alone must give what it gives in a batch of 16.
LATENT_CASES = {
    "ge": ("tiny", {}),
    "ge auto": ("tiny", {"latent_weight": "auto"}),
    "csgm": ("tiny", {}),
    "csgm auto": ("tiny", {"latent_weight": "auto"}),
    "ge adapt": ("tiny", {"adapt_steps": 5, "adapt_lr": 1e-2, "adapt_check_every": 1}),
    "csgm adapt": ("tiny", {"adapt_steps": 5, "adapt_lr": 1e-2, "adapt_check_every": 1}),
    "yeh": ("tiny", {}),
    "yeh blend": ("tiny", {"blend": True}),
    "lvr": ("uniform", {}),
    "lvr project": ("uniform", {"clip": "project"}),
    "lvr_sa": ("uniform", {"n_attribute": 4}),
}


def _latent_methods() -> list[str]:
    from generative_encoder.methods.latent import LatentSearch

    return sorted(
        name
        for name in METHODS.names()
        if isinstance(METHODS.get(name), type) and issubclass(METHODS.get(name), LatentSearch)
    )


def test_every_latent_method_has_a_batch_invariance_case():
    assert sorted({case.split()[0] for case in LATENT_CASES} | {"ge0"}) == _latent_methods()


@pytest.mark.parametrize("case", sorted(LATENT_CASES))
def test_problem_alone_equals_problem_in_batch_of_16(
    case, tiny_model_dir, uniform_model_dir, tmp_path
):
    """The README's promise for every latent method: a problem's answer does not depend on its
    batch-mates (per-problem starts, per-problem clipping redraws, per-problem auto lambda).
    ``ge0`` needs a BEGAN model and is ``ge`` with another encoder: covered by ``ge``."""
    name, (which, options) = case.split()[0], LATENT_CASES[case]
    model = load_model(tiny_model_dir if which == "tiny" else uniform_model_dir)
    options = options | ({"cache": str(tmp_path)} if name == "lvr_sa" else {})
    G = model.generator
    with torch.no_grad():
        x = G(G.sample_latent(16, torch.Generator().manual_seed(3)))
    task = (
        "inpaint"
        if options.get("blend") or options.get("latent_weight") == "auto" and name == "ge"
        else "denoise"
    )
    params = {"mask": "block"} if task == "inpaint" else {"sigma": 0.1}
    physics = make_physics(task, model.image_shape, seed=1, **params)
    y = physics(x)
    method = METHODS.build(name, model=model, steps=25, **options)
    batch = method.solve(y, physics, seeds=range(100, 116))
    for j in (0, 11):
        alone = method.solve(y[j : j + 1], physics, seeds=[100 + j])
        torch.testing.assert_close(alone.z[0], batch.z[j], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(alone.x[0], batch.x[j], atol=1e-5, rtol=1e-4)


def test_blind_ge_matches_the_code_of_the_sharp_image_to_the_blurred_one(model, fakes):
    """The preprint's blind deblurring: S = identity; the default puts G(z) through the blur."""
    physics = make_physics("deblur", model.image_shape, sigma=0.0)
    y = physics(fakes)
    for blind, s in ((True, lambda x: x), (False, physics.A)):
        loss, _ = METHODS.build("ge", model=model, blind=blind).data_term(y, physics, restarts=1)
        with torch.no_grad():
            expected = (model.encoder(s(fakes)) - model.encoder(y)).square().sum(1)
            torch.testing.assert_close(loss(fakes, None), expected)
    assert loss(fakes, None).abs().max() < 1e-8  # known blur: the clean image fits exactly
    with pytest.raises(ConfigError, match="blind=True applies to deblurring only"):
        METHODS.build("ge", model=model, blind=True, steps=1).solve(
            y, make_physics("denoise", model.image_shape)
        )


@pytest.mark.parametrize("name, options", [("yeh", {}), ("ge", {"restarts": 1}), ("csgm", {})])
def test_long_searches_on_the_shipped_model_do_not_drift_with_the_batch(name, options):
    """Rounding that depends on the batch (a matrix product with one output column, a lone row's
    convolution, the vectorised tail of an element-wise op) is amplified by Adam over hundreds of
    steps: on the shipped model, a problem alone and in a batch of 8 must still agree exactly."""
    from generative_encoder.data import get_dataset, stack_images
    from generative_encoder.io.zoo import shipped_model

    model = shipped_model()
    x = stack_images(get_dataset("mnist5k", "test"), range(8))
    physics = make_physics("superres", model.image_shape, factor=4, seed=0)
    y = physics(x)
    method = METHODS.build(name, model=model, steps=150, **options)
    batch = method.solve(y, physics, seeds=range(8))
    for j in (0, 5):
        alone = method.solve(y[j : j + 1], physics, seeds=[j])
        torch.testing.assert_close(alone.x[0], batch.x[j], atol=1e-6, rtol=0)
