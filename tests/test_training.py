import csv

import pytest
import torch

from generative_encoder.data import get_dataset
from generative_encoder.errors import ConfigError, DataError
from generative_encoder.io.checkpoints import load_model
from generative_encoder.training import EncoderConfig, GANConfig, train_encoder, train_gan

TINY_GAN = dict(batch_size=16, latent_dim=16, width=16, sample_every=5)


@pytest.fixture(scope="module")
def digits():
    return get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_gan_run_writes_what_it_promises(tiny_model_dir):
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert {
        "generator.safetensors",
        "generator.json",
        "discriminator.safetensors",
        "model.json",
        "gan_log.csv",
        "gan_config.json",
        "gan_state.json",
    } <= files
    assert sorted(p.name for p in (tiny_model_dir / "samples").iterdir()) == [
        "step_000010.png",
        "step_000020.png",
    ]
    rows = _rows(tiny_model_dir / "gan_log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    assert all(float(r["loss_d"]) > 0 for r in rows)


def test_encoder_run_logs_real_and_fake_error(tiny_model_dir):
    rows = _rows(tiny_model_dir / "encoder_log.csv")
    evaluated = [r for r in rows if r["mse_real_test"]]
    assert [int(r["step"]) for r in evaluated] == [100, 200]
    first, last = evaluated[0], evaluated[-1]
    assert 0 < float(last["mse_real_test"]) < 0.2 and 0 < float(last["mse_fake"]) < 0.2
    # 200 steps of Adam lower the reconstruction error of real test digits
    assert float(last["mse_real_test"]) < float(first["mse_real_test"])
    assert load_model(tiny_model_dir).info["code_dim"] == 32


def test_same_seed_same_run_and_resume_is_exact(digits, tmp_path):
    train, _ = digits
    cfg = GANConfig(steps=10, checkpoint_every=5, **TINY_GAN)
    train_gan(train, tmp_path / "a", cfg)
    train_gan(train, tmp_path / "b", GANConfig(steps=5, checkpoint_every=5, **TINY_GAN))
    train_gan(train, tmp_path / "b", cfg, resume=True)
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    for (name, pa), pb in zip(a.generator.state_dict().items(), b.generator.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert [r["loss_g"] for r in _rows(tmp_path / "a" / "gan_log.csv")] == [
        r["loss_g"] for r in _rows(tmp_path / "b" / "gan_log.csv")
    ]


def test_encoder_refuses_mismatched_data(tiny_model_dir):
    rock = get_dataset("synthetic_rock", "train", n=16, size=32)
    with pytest.raises(DataError, match="32 px images but the generator"):
        train_encoder(rock, rock, tiny_model_dir, EncoderConfig(steps=1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(loss="wasserstein"), "loss must be one of"),
        (dict(arch="stylegan"), "unknown GAN architecture 'stylegan'"),
        (dict(steps=0), "steps must be >= 1"),
    ],
)
def test_bad_gan_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GANConfig(**kwargs)


def test_bad_encoder_config():
    with pytest.raises(ConfigError, match="real_fraction must be in"):
        EncoderConfig(real_fraction=1.5)
