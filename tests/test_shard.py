"""``genc restore`` under ``torchrun``: each rank restores its own batches (no communication),
every result is written once, a rerun skips what is done, and the images are those of a
one-process run, bit for bit."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_test_digits

from generative_encoder.apps.restore_folder import shard_from_env
from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import load_tensors

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")


def test_shard_from_env():
    assert shard_from_env({}) == (0, 1)
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == (1, 2)
    with pytest.raises(ConfigError, match="RANK < WORLD_SIZE"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="must be integers"):
        shard_from_env({"RANK": "x", "WORLD_SIZE": "2"})


def _restore(argv, processes: int):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    if processes == 1:
        cmd = [sys.executable, "-m", "generative_encoder.cli"]
    else:
        cmd = [
            TORCHRUN,
            "--standalone",
            "--nproc_per_node",
            str(processes),
            "-m",
            "generative_encoder.cli",
        ]
    done = subprocess.run(
        cmd + ["restore", *map(str, argv)], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _check_identical(inputs, n: int, tmp_path, tiny_model_dir, batch: int, rerun: bool):
    options = [
        "--model",
        tiny_model_dir,
        "--task",
        "denoise",
        "--param",
        "sigma=0.2",
        "--method",
        "csgm",
        "--method-opt",
        "steps=5",
        "--method-opt",
        "restarts=2",
        "--simulate",
        "--batch-size",
        batch,
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    _restore([inputs, "-o", one, *options], 1)
    out = _restore([inputs, "-o", two, *options], 2)
    assert "rank 0 of 2" in out
    names = sorted(p.name for p in (one / "restored").iterdir())
    assert len(names) == n and names == sorted(p.name for p in (two / "restored").iterdir())
    for name in names:  # the same bytes: the same images
        assert (one / "restored" / name).read_bytes() == (two / "restored" / name).read_bytes()
        stem = Path(name).stem
        a, b = (load_tensors(d / "latents" / f"{stem}.safetensors") for d in (one, two))
        assert torch.equal(a["z"], b["z"])
    assert _rows(one / "metrics.csv") == _rows(two / "metrics.csv")  # merged, in input order
    assert len(_rows(two / "metrics.csv")) == n
    assert (two / "grid.png").is_file()  # rank 0's images only
    assert not list(two.glob("metrics.rank*.csv")) or all(  # each rank's rows, merged above
        set(r["image"] for r in _rows(p)) <= set(names) for p in two.glob("metrics.rank*.csv")
    )
    if not rerun:
        return

    # a rerun skips everything and rewrites nothing (here with 1 process: the shards' rows and
    # files are found whatever the number of processes)
    stamps = {p: p.stat().st_mtime_ns for p in (two / "restored").iterdir()}
    again = _restore([inputs, "-o", two, *options], 1)
    assert f"skipped {n} image(s)" in again and "restored 0 image(s)" in again
    assert {p: p.stat().st_mtime_ns for p in (two / "restored").iterdir()} == stamps


def test_two_processes_give_the_images_of_one(tiny_model_dir, tmp_path):
    digits = write_test_digits(tmp_path / "digits", 10, width=2)
    _check_identical(digits, 10, tmp_path, tiny_model_dir, batch=3, rerun=True)  # 4 batches


@pytest.mark.slow
def test_two_processes_on_100_images(tiny_model_dir, tmp_path):
    """100 images: the same results with any number of processes."""
    digits = write_test_digits(tmp_path / "digits", 100, width=3)
    _check_identical(digits, 100, tmp_path, tiny_model_dir, batch=8, rerun=False)
