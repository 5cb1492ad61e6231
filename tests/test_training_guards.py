"""Training never destroys a trained run: a folder that holds one is refused without --resume or
--overwrite, --resume continues only a run of the same data from a state that exists and is
finite, and a loss or weight that stops being finite ends the run before anything is written."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from generative_encoder.cli import main
from generative_encoder.data import get_dataset
from generative_encoder.errors import CheckpointError, ConfigError, TrainingError
from generative_encoder.training import (
    EncoderConfig,
    GANConfig,
    objectives,
    train_encoder,
    train_gan,
)

TINY = dict(batch_size=8, latent_dim=8, width=8, checkpoint_every=2, sample_every=2)


@pytest.fixture(scope="module")
def digits():
    return get_dataset("mnist5k", "train")


@pytest.fixture()
def run(tmp_path, digits):
    train_gan(digits, tmp_path, GANConfig(steps=2, **TINY))
    return tmp_path


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.safetensors"))}


def test_a_trained_run_is_refused_without_resume_or_overwrite(run, digits, capsys):
    before = _bytes(run)
    with pytest.raises(ConfigError, match="already holds a trained run .*generator"):
        train_gan(digits, run, GANConfig(steps=2, seed=1, **TINY))
    assert _bytes(run) == before
    argv = [
        "train",
        "gan",
        "--out",
        str(run),
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--latent-dim",
        "8",
        "--width",
        "8",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use --resume to continue it or --overwrite" in err[0]
    assert _bytes(run) == before
    train_gan(digits, run, GANConfig(steps=2, seed=1, **TINY), overwrite=True)
    assert _bytes(run)["generator.safetensors"] != before["generator.safetensors"]


def test_resume_needs_a_state_when_a_model_is_there(run, digits):
    (run / "gan_state.safetensors").unlink()
    with pytest.raises(ConfigError, match="no gan_state.safetensors to resume from"):
        train_gan(digits, run, GANConfig(steps=4, **TINY), resume=True)


def test_resume_on_other_data_is_refused(run):
    rock = get_dataset("synthetic_rock", n=40, size=28)
    with pytest.raises(ConfigError, match="was trained on other data .*mnist5k"):
        train_gan(rock, run, GANConfig(steps=4, **TINY), resume=True)
    other_digits = get_dataset("mnist5k", "test")  # same name, other images
    with pytest.raises(ConfigError, match="was trained on other data"):
        train_gan(other_digits, run, GANConfig(steps=4, **TINY), resume=True)


def test_a_state_with_nan_is_not_resumed(run, digits):
    path = run / "gan_state.safetensors"
    tensors = load_file(path)
    key = next(k for k in tensors if k.startswith("module.G.") and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        header = f.metadata()
    save_file(tensors, path, metadata=header)
    with pytest.raises(CheckpointError, match=f"{key} holds NaN or Inf"):
        train_gan(digits, run, GANConfig(steps=4, **TINY), resume=True)


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, digits, monkeypatch):
    """A loss that turns NaN at step 3 stops the run there; the step-2 files stay as they were."""
    train_gan(digits, tmp_path, GANConfig(steps=2, **TINY))
    good = _bytes(tmp_path)
    calls = {"n": 0}
    loss_d = objectives.DCGAN.loss_d

    def poisoned(self, *args):
        calls["n"] += 1
        value = loss_d(self, *args)
        return value * float("nan") if calls["n"] == 1 else value

    monkeypatch.setattr(objectives.DCGAN, "loss_d", poisoned)
    with pytest.raises(TrainingError, match="diverged at step 3: loss_d = nan"):
        train_gan(digits, tmp_path, GANConfig(steps=4, **TINY), resume=True)
    assert _bytes(tmp_path) == good
    rows = (tmp_path / "gan_log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def test_the_encoder_is_guarded_the_same_way(run, digits):
    test = get_dataset("mnist5k", "test")
    config = EncoderConfig(
        steps=2, batch_size=8, code_dim=8, width=4, eval_every=2, checkpoint_every=2, n_eval=16
    )
    train_encoder(digits, test, run, config)
    before = _bytes(run)
    with pytest.raises(ConfigError, match="already holds a trained run .*encoder"):
        train_encoder(digits, test, run, config)
    assert _bytes(run) == before
    train_encoder(
        digits,
        test,
        run,
        EncoderConfig(
            kind="vae",
            **{
                k: getattr(config, k)
                for k in (
                    "steps",
                    "batch_size",
                    "code_dim",
                    "width",
                    "eval_every",
                    "checkpoint_every",
                    "n_eval",
                )
            },
        ),
    )  # another family: fine
