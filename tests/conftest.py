import os

import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every run and keep no example database, so that CI
# is deterministic; GENC_HYPOTHESIS_PROFILE=explore draws fresh examples while developing.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", max_examples=200, database=None)
settings.load_profile(os.environ.get("GENC_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests' tensors are tiny: one thread is faster, and far faster on a busy machine
    (seen here: a 200 x 768 pseudo-inverse took 25 ms on one thread, 0.9 s on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A model folder (generator, discriminator, encoder, decoder, latent regressor, denoiser)
    for 28 x 28 digits, trained for a few steps only: enough to exercise every code path, not to
    restore well."""
    from generative_encoder.data import get_dataset
    from generative_encoder.training import EncoderConfig, GANConfig, train_encoder, train_gan

    out = tmp_path_factory.mktemp("model")
    train, test = get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")
    train_gan(
        train,
        out,
        GANConfig(
            steps=20, batch_size=16, latent_dim=16, width=16, checkpoint_every=10, sample_every=10
        ),
    )
    train_encoder(
        train,
        test,
        out,
        EncoderConfig(
            steps=200,
            batch_size=16,
            code_dim=32,
            width=8,
            eval_every=100,
            checkpoint_every=100,
            n_eval=64,
        ),
    )
    from generative_encoder.training.regressor import RegressorConfig, train_regressor

    train_regressor(out, RegressorConfig(steps=20, hidden=32, batch_size=16))
    from generative_encoder.training.denoiser import DenoiserConfig, train_denoiser

    train_denoiser(
        train, test, out, DenoiserConfig(steps=5, width=4, blocks=1, batch_size=4, n_eval=8)
    )
    return out


@pytest.fixture(scope="session")
def uniform_model_dir(tmp_path_factory):
    """A 28 x 28 digit GAN with latents uniform in [-1, 1]^16, trained for a few steps only."""
    from generative_encoder.data import get_dataset
    from generative_encoder.training import GANConfig, train_gan

    out = tmp_path_factory.mktemp("uniform")
    train_gan(
        get_dataset("mnist5k", "train"),
        out,
        GANConfig(
            steps=10,
            batch_size=16,
            latent_dim=16,
            width=16,
            latent_dist="uniform",
            checkpoint_every=10,
            sample_every=10,
        ),
    )
    return out


@pytest.fixture(scope="session")
def began_dir(tmp_path_factory):
    """A BEGAN (4 steps, a large lambda_k so that k_t reaches a clip) with latents uniform in
    [-1, 1]^8 and every encoder kind (conv, vae, aegan): a model for every latent method."""
    from generative_encoder.data import get_dataset
    from generative_encoder.training import EncoderConfig, GANConfig, train_encoder, train_gan

    out = tmp_path_factory.mktemp("began")
    train, test = get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")
    train_gan(
        train,
        out,
        GANConfig(
            arch="began",
            steps=4,
            checkpoint_every=4,
            lambda_k=2.0,
            batch_size=8,
            latent_dim=8,
            width=8,
            latent_dist="uniform",
            sample_every=100,
        ),
    )
    for kind in ("ge1", "vae", "aegan"):
        train_encoder(
            train,
            test,
            out,
            EncoderConfig(
                kind=kind,
                steps=2,
                batch_size=8,
                code_dim=8,
                width=4,
                eval_every=2,
                checkpoint_every=2,
                n_eval=16,
            ),
        )
    return out


def write_test_digits(folder, n: int, width: int = 1):
    """The first n mnist5k test digits as PNGs ``digit{i}.png`` (i zero-padded to ``width``)."""
    from generative_encoder.data import get_dataset
    from generative_encoder.io.images import write_image

    test = get_dataset("mnist5k", "test")
    for i in range(n):
        write_image(folder / f"digit{i:0{width}d}.png", test[i][0])
    return folder


def measure(task: str, model, x, **params):
    """(physics, y = physics(x)) of a task at the model's image shape, operator seed 1."""
    from generative_encoder.physics import make_physics

    physics = make_physics(task, model.image_shape, seed=1, **params)
    return physics, physics(x)
