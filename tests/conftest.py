import pytest
import torch


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
    """A model folder (generator, discriminator, encoder, decoder) for 28 x 28 digits, trained for
    a few steps only: enough to exercise every code path, not to restore well."""
    from generative_encoder.data import get_dataset
    from generative_encoder.training import EncoderConfig, GANConfig, train_gan, train_encoder

    out = tmp_path_factory.mktemp("model")
    train, test = get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")
    train_gan(train, out, GANConfig(steps=20, batch_size=16, latent_dim=16, width=16,
                                    checkpoint_every=10, sample_every=10))
    train_encoder(train, test, out, EncoderConfig(steps=200, batch_size=16, code_dim=32, width=8,
                                                  eval_every=100, checkpoint_every=100, n_eval=64))
    return out


def write_test_digits(folder, n: int, width: int = 1):
    """The first n mnist5k test digits as PNGs ``digit{i}.png`` (i zero-padded to ``width``)."""
    from generative_encoder.data import get_dataset
    from generative_encoder.images import write_image

    test = get_dataset("mnist5k", "test")
    for i in range(n):
        write_image(folder / f"digit{i:0{width}d}.png", test[i][0])
    return folder
