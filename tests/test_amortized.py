"""Amortized GE: the latent regressor R, the `amortized` method and the amortized starts of
`ge` and `csgm`."""

import json

import pytest
import torch

from generative_encoder.apps.restore import task_physics
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.errors import CheckpointError, ConfigError
from generative_encoder.eval.metrics import psnr
from generative_encoder.io.checkpoints import load_model
from generative_encoder.io.zoo import shipped_model
from generative_encoder.methods import METHODS
from generative_encoder.methods.latent import amortized_latent
from generative_encoder.physics import lift
from generative_encoder.physics.tasks import make_physics
from generative_encoder.training.regressor import RegressorConfig, train_regressor


@pytest.fixture(scope="module")
def digits():
    return stack_images(get_dataset("mnist5k", "test"), range(6))


def test_regressor_is_a_model_network_that_maps_codes_to_latents(tiny_model_dir):
    model = load_model(tiny_model_dir)
    r = model.network("regressor")
    assert r.kwargs["code_dim"] == model.encoder.kwargs["code_dim"]
    assert r.kwargs["latent_dim"] == model.generator.latent_dim
    assert r(torch.zeros(3, r.kwargs["code_dim"])).shape == (3, model.generator.latent_dim)


def test_training_lowers_the_image_loss_and_refuses_to_overwrite(tmp_path):
    import shutil

    from generative_encoder.io.zoo import shipped_model_dir

    folder = tmp_path / "m"
    shutil.copytree(shipped_model_dir(), folder)
    config = RegressorConfig(steps=2, hidden=64, batch_size=32)
    short = train_regressor(folder, config, overwrite=True)
    with pytest.raises(ConfigError, match="already holds a trained run"):
        train_regressor(folder, config)
    longer = train_regressor(
        folder, RegressorConfig(steps=120, hidden=64, batch_size=32), overwrite=True
    )
    assert longer["image_mse"] < 0.7 * short["image_mse"]
    assert load_model(folder).network("regressor").kwargs["hidden"] == 64


def test_degraded_training_codes_are_recorded_and_fit_degraded_samples_better(tmp_path):
    import shutil

    from generative_encoder.io.zoo import shipped_model_dir
    from generative_encoder.training.regressor import evaluate_regressor

    folder = tmp_path / "m"
    shutil.copytree(shipped_model_dir(), folder)
    with pytest.raises(ConfigError, match="degradations must be among"):
        RegressorConfig(degradations=("blur",))
    fits = {}
    for degradations in ((), ("denoise",)):
        config = RegressorConfig(steps=60, hidden=64, batch_size=32, degradations=degradations)
        train_regressor(folder, config, overwrite=True)
        model = load_model(folder)
        meta = json.loads((folder / "regressor.json").read_text())["meta"]
        assert meta.get("degradations", []) == list(degradations)
        assert ("degraded_image_mse" in meta) == bool(degradations)
        fits[degradations] = evaluate_regressor(
            model.network("regressor"), model.encoder, model.generator, 5, ("denoise",)
        )["degraded_image_mse"]
    # the regressor trained on noisy samples' codes maps them closer to the clean sample
    assert fits[("denoise",)] < fits[()]


def test_the_real_phase_fits_real_images_better_and_refuses_bad_input(tmp_path):
    import shutil

    from generative_encoder.io.zoo import shipped_model_dir
    from generative_encoder.training.regressor import evaluate_real

    folder = tmp_path / "m"
    shutil.copytree(shipped_model_dir(), folder)
    train = get_dataset("mnist5k", "train")
    with pytest.raises(ConfigError, match="needs the real training images"):
        train_regressor(folder, RegressorConfig(steps=1, real_steps=1), overwrite=True)
    with pytest.raises(ConfigError, match="real_steps must be an integer >= 0"):
        RegressorConfig(real_steps=-1)
    with pytest.raises(ConfigError, match="the real images are 1x14x14"):
        small = torch.utils.data.TensorDataset(torch.rand(4, 1, 14, 14), torch.zeros(4))
        train_regressor(
            folder, RegressorConfig(steps=1, real_steps=1), images=small, overwrite=True
        )
    held = torch.utils.data.Subset(get_dataset("mnist5k", "test"), range(128))
    fits = {}
    for real_steps in (0, 90):
        config = RegressorConfig(
            steps=120 - real_steps, real_steps=real_steps, real_lr=1e-3, hidden=64, batch_size=32
        )
        logs = train_regressor(folder, config, images=train, overwrite=True)
        model = load_model(folder)
        fits[real_steps] = evaluate_real(
            model.network("regressor"), model.encoder, model.generator, held
        )["real_image_mse"]
        meta = json.loads((folder / "regressor.json").read_text())["meta"]
        assert meta.get("real_steps", 0) == real_steps
        assert ("real_image_mse" in logs) == bool(real_steps)
    # same number of steps: those with real digits map held-out real digits' codes closer
    assert fits[90] < 0.9 * fits[0]


def test_amortized_method_is_g_of_r_of_e_of_the_lifted_observation(tiny_model_dir, digits):
    model = load_model(tiny_model_dir)
    physics = task_physics("superres", model, {"factor": 2})
    y = physics(digits)
    x = METHODS.build("amortized", model=model)(y, physics)
    with torch.no_grad():
        z = model.network("regressor")(model.encoder(lift(y, physics)))
        by_hand = model.generator(z).clamp(0, 1)
    assert torch.allclose(x, by_hand, atol=1e-5)
    alone = METHODS.build("amortized", model=model)(y[2:3], physics)
    assert torch.equal(alone[0], x[2])


def test_start_options_are_checked(tiny_model_dir, uniform_model_dir):
    model = load_model(tiny_model_dir)
    with pytest.raises(ConfigError, match="start must be one of prior, amortized"):
        METHODS.build("ge", model=model, start="encoder")
    with pytest.raises(ConfigError, match="'amortized\\+prior' adds restarts"):
        METHODS.build("ge", model=model, start="amortized", restarts=3)
    with pytest.raises(ConfigError, match="method 'yeh' has no amortized start"):
        METHODS.build("yeh", model=model, start="amortized")
    assert METHODS.build("csgm", model=model, start="amortized").config.restarts == 1
    with pytest.raises(CheckpointError, match="has no regressor"):
        METHODS.build("ge", model=load_model(uniform_model_dir), start="amortized")


def test_amortized_plus_prior_starts_restart_zero_at_the_regressor(tiny_model_dir, digits):
    model = load_model(tiny_model_dir)
    physics = task_physics("denoise", model, {"sigma": 0.1})
    y = physics(digits)
    ge = METHODS.build("ge", model=model, steps=3, start="amortized+prior")
    init = amortized_latent(model, "ge1", y, physics)
    explicit = METHODS.build("ge", model=model, steps=3).solve(y, physics, init=init)
    result = ge.solve(y, physics)
    assert torch.equal(result.x, explicit.x)
    alone = ge.solve(y[4:5], physics)
    assert torch.equal(alone.x[0], result.x[4])  # the start is computed row by row too


def test_amortized_start_reaches_in_30_steps_what_the_prior_start_does_not():
    """Shipped model, GE from the encoder's code of 16 test digits: 30 Adam steps from
    R(E(x)) beat 30 steps from the prior, and the regressor alone is already close."""
    model = shipped_model()
    x = stack_images(get_dataset("mnist5k", "test"), range(16))
    physics = make_physics("encoder_cs", model.image_shape, encoder=model.encoder)
    y = physics(x)
    guess = METHODS.build("amortized", model=model)(y, physics)
    prior = METHODS.build("ge", model=model, steps=30, restarts=1)(y, physics)
    amortized = METHODS.build("ge", model=model, steps=30, start="amortized")(y, physics)
    gains = psnr(amortized, x) - psnr(prior, x)
    assert gains.mean() > 1.0
    assert psnr(amortized, x).mean() >= psnr(guess, x).mean() - 0.1
