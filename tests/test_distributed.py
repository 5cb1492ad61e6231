"""Training under torchrun: a 2-process (gloo, CPU) GAN + encoder run through the CLI, and the
pieces of ``training.distributed`` that need no launch."""

import csv
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from generative_encoder.data import get_dataset
from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import load_model, load_tensors
from generative_encoder.training import EncoderConfig, distributed, train_encoder

GAN_STEPS, ENCODER_STEPS = 8, 30
ENCODER_ARGS = dict(code_dim=8, width=4, batch_size=16)

SCRIPT = textwrap.dedent(f"""
    import sys
    from generative_encoder.cli import main
    out = sys.argv[1]
    assert main(["train", "gan", "--out", out, "--steps", "{GAN_STEPS}", "--batch-size", "16",
                 "--latent-dim", "8", "--width", "8", "--checkpoint-every", "4",
                 "--sample-every", "4"]) == 0
    assert main(["train", "encoder", "--model", out, "--steps", "{ENCODER_STEPS}",
                 "--batch-size", "16", "--m", "8", "--width", "4",
                 "--regressor-steps", "0"]) == 0
""")


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """(folder, stdout) of `genc train gan` then `genc train encoder` under torchrun, 2 ranks."""
    folder = tmp_path_factory.mktemp("ddp")
    script = folder / "train.py"
    script.write_text(SCRIPT)
    out = folder / "model"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    proc = subprocess.run(
        [*torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_two_process_gan_run_writes_the_model_once_with_finite_losses(two_process_run):
    out, stdout = two_process_run
    rows = _rows(out / "gan_log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, GAN_STEPS + 1))  # written once
    for r in rows:
        for key in ("loss_d", "loss_g", "d_real", "d_fake"):
            assert math.isfinite(float(r[key])), (key, r)
        assert 0 < float(r["d_real"]) < 1 and float(r["loss_d"]) > 0
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_000004.png",
        "step_000008.png",
    ]
    assert stdout.count("generator and discriminator after 8 steps") == 1  # rank 0 reports
    model = load_model(out)
    assert model.info["gan_steps"] == GAN_STEPS
    assert all(torch.isfinite(p).all() for p in model.generator.parameters())
    state = load_tensors(out / "gan_state.safetensors")
    assert not torch.equal(state["rng"], state["rng.rank1"]), "ranks must draw different batches"


def test_two_process_encoder_run_converges_like_one_process(two_process_run, tmp_path):
    out, stdout = two_process_run
    rows = _rows(out / "encoder_log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, ENCODER_STEPS + 1))
    losses = [float(r["loss"]) for r in rows]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])  # it learns
    assert stdout.count("encoder m=8: reconstruction MSE") == 1
    # the same run in one process (same global batch, the rank-0 stream only): the 2-process
    # run is not the same sequence of batches, but it must reach a comparable error
    single = tmp_path / "single"
    shutil.copytree(out, single)
    train, test = get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")
    logs = train_encoder(
        train, test, single, EncoderConfig(steps=ENCODER_STEPS, **ENCODER_ARGS), overwrite=True
    )
    two = float(rows[-1]["mse_real_test"])
    assert 0.5 < two / logs["mse_real_test"] < 2.0, (two, logs["mse_real_test"])


def test_without_a_launch_everything_is_rank_0_of_1(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.info() == distributed.Info(0, 1, 0)
    assert distributed.is_main() and not distributed.launched()
    with distributed.session("cpu") as where:
        assert not where.distributed
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node 1
    assert not distributed.launched()


def test_batches_split_and_streams_differ_by_rank():
    two = distributed.Info(rank=1, world=2)
    assert distributed.split_batch(64, two) == 32
    with pytest.raises(ConfigError, match="batch_size 63 does not split evenly over 2"):
        distributed.split_batch(63, two)
    assert distributed.rank_seed(5, distributed.Info()) == 5  # one process: as before
    assert distributed.rank_seed(5, two) == 5 + distributed.RANK_STREAM


def test_cuda_ranks_get_their_own_gpu_and_nccl():
    assert distributed.local_device("cuda", 1) == torch.device("cuda", 1)
    assert distributed.local_device("cuda:0", 1) == torch.device("cuda", 0)
    assert distributed.local_device("cpu", 1) == torch.device("cpu")
    assert distributed.backend_for(torch.device("cuda", 0)) == "nccl"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
