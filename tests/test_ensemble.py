"""``ensemble=K``: K independent solves per problem, averaged pixel-wise."""

import pytest
import torch
from conftest import measure

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import load_model
from generative_encoder.methods import METHODS
from generative_encoder.physics.seeds import member_seed


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir)


@pytest.fixture(scope="module")
def uniform_model(uniform_model_dir):
    return load_model(uniform_model_dir)


@pytest.fixture(scope="module")
def digits():
    return stack_images(get_dataset("mnist5k", "test"), range(3))


@pytest.mark.parametrize(
    "name, task, params, options",
    [
        ("csgm", "denoise", {"sigma": 0.2}, {}),
        ("ge", "inpaint", {"mask": "freeform"}, {}),
        ("csgm", "cs", {"m": 100}, {"ilo_steps": 4, "ilo_check_every": 2}),
        ("lvr", "superres", {"factor": 2}, {}),  # stochastic clipping: streams of the seed
    ],
)
def test_member_zero_is_the_plain_run_and_the_output_is_the_members_mean(
    name, task, params, options, model, uniform_model, digits
):
    model = uniform_model if name == "lvr" else model
    physics, y = measure(task, model, digits, **params)
    seeds = [7, 8, 9]
    plain = METHODS.build(name, model=model, steps=8, **options).solve(y, physics, seeds=seeds)
    three = METHODS.build(name, model=model, steps=8, ensemble=3, **options)
    result = three.solve(y, physics, seeds=seeds)
    assert result.members.shape == (3, 3, *model.image_shape)
    torch.testing.assert_close(result.members[:, 0], plain.x, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(result.z, plain.z, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(result.x, result.members.mean(1))
    # the other members started elsewhere, so they end elsewhere
    assert (result.members[:, 1] - result.members[:, 0]).abs().amax() > 1e-3
    assert (result.x - plain.x).abs().amax() > 1e-4
    assert plain.members is None


def test_a_problem_alone_gets_what_it_gets_in_a_batch(model, digits):
    physics, y = measure("denoise", model, digits, sigma=0.2)
    method = METHODS.build("csgm", model=model, steps=8, ensemble=2)
    batch = method.solve(y, physics, seeds=[3, 4, 5])
    alone = method.solve(y[2:], physics, seeds=[5])
    torch.testing.assert_close(alone.x[0], batch.x[2], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone.members[0], batch.members[2], atol=1e-5, rtol=1e-4)


def test_member_seeds_are_distinct_and_member_zero_keeps_the_problem_seed():
    seeds = [member_seed(s, j) for s in range(50) for j in range(4)]
    assert len(set(seeds)) == len(seeds)
    assert [member_seed(s, 0) for s in range(5)] == list(range(5))


def test_averaging_lowers_the_error_of_a_noisy_denoising(model):
    """On images the generator makes, each solve is a noisy fit; the mean of 4 is closer."""
    with torch.no_grad():
        x = model.generator(
            torch.randn(6, model.generator.latent_dim, generator=torch.Generator().manual_seed(0))
        )
    physics, y = measure("denoise", model, x, sigma=0.3)
    result = METHODS.build("csgm", model=model, steps=30, ensemble=4).solve(y, physics)
    one = (result.members[:, 0] - x).square().mean()
    mean = (result.x - x).square().mean()
    assert mean < one


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ensemble": 0}, "ensemble must be an integer >= 1, got 0"),
        ({"ensemble": 2.5}, "ensemble must be an integer >= 1"),
        ({"ensemble": True}, "ensemble must be an integer >= 1"),
        ({"ensemble": 2, "start": "amortized"}, "needs random starts"),
    ],
)
def test_bad_ensembles_are_refused_in_one_line(options, message, model):
    with pytest.raises(ConfigError, match=message) as info:
        METHODS.build("csgm", model=model, **options)
    assert "\n" not in str(info.value)


def test_seeds_of_the_wrong_length_are_refused(model, digits):
    physics, y = measure("denoise", model, digits, sigma=0.2)
    with pytest.raises(ConfigError, match="one seed per problem"):
        METHODS.build("csgm", model=model, steps=2, ensemble=2).solve(y, physics, seeds=[1])
