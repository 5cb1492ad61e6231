import csv
import json
from contextlib import nullcontext

import pytest
import torch

from generative_encoder.data import get_dataset
from generative_encoder.errors import ConfigError, DataError
from generative_encoder.io.checkpoints import load_model
from generative_encoder.training import (
    EncoderConfig,
    GANConfig,
    distributed,
    train_encoder,
    train_gan,
)
from generative_encoder.training.loop import ImageBank
from generative_encoder.training.objectives import DCGAN, r1_penalty

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
    # a staged recipe resumes a run that is past a stage's step count: it trains nothing more,
    # keeps the log and says where the run stands
    weights = (tmp_path / "b" / "generator.safetensors").read_bytes()
    logs = train_gan(train, tmp_path / "b", GANConfig(steps=5, **TINY_GAN), resume=True)
    assert logs == {"step": 10}
    assert (tmp_path / "b" / "generator.safetensors").read_bytes() == weights
    assert len(_rows(tmp_path / "b" / "gan_log.csv")) == 10


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


def test_lazy_r1_applies_the_penalty_every_kth_step_weighted_by_k(digits):
    train, _ = digits
    bank = ImageBank(torch.utils.data.Subset(train, range(32)), torch.device("cpu"))
    real = bank.at(torch.arange(16))
    z = torch.randn(16, 16, generator=torch.Generator().manual_seed(1))

    def loss(r1_every, step, gamma=2.0):
        config = GANConfig(r1_gamma=gamma, r1_every=r1_every, **TINY_GAN)
        objective = DCGAN(config, bank, torch.device("cpu"), torch.Generator(), nullcontext)
        objective.distribute(distributed.Info())
        objective.begin_step(step)
        return objective.loss_d(real.clone(), z, torch.arange(16)).item(), objective

    plain, objective = loss(1, 5, gamma=0.0)
    x = real.clone().requires_grad_(True)
    penalty = r1_penalty(objective.D(x).float(), x).item()
    assert penalty > 0
    assert loss(1, 5)[0] == pytest.approx(plain + 2.0 / 2 * penalty, rel=1e-5)
    assert loss(4, 5)[0] == pytest.approx(plain, rel=1e-6)  # not a penalty step
    assert loss(4, 8)[0] == pytest.approx(plain + 4 * 2.0 / 2 * penalty, rel=1e-5)
    with pytest.raises(ConfigError, match="r1_every must be >= 1"):
        GANConfig(r1_every=0)


def test_cli_passes_lazy_r1_to_the_run(tmp_path, capsys):
    from generative_encoder.cli import main

    def argv(out, every):
        tiny = "--steps 2 --batch-size 4 --latent-dim 4 --width 4 --r1 1 --r1-every".split()
        return ["train", "gan", "--out", str(tmp_path / out), *tiny, every]

    assert main(argv("m", "2")) == 0
    config = json.loads((tmp_path / "m" / "gan_config.json").read_text())
    assert (config["r1_gamma"], config["r1_every"]) == (1.0, 2)
    capsys.readouterr()
    assert main(argv("bad", "0")) == 2
    assert "r1_every must be >= 1, got 0" in capsys.readouterr().err
