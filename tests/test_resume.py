"""Kill real ``genc`` processes with SIGKILL mid-run, run them again, and check what was lost.

- ``genc train gan --resume`` continues from the last checkpoint: at most ``--checkpoint-every``
  steps are lost, and the run ends exactly as one that was never interrupted.
- ``genc restore`` into the same folder skips the images that were finished (their files are not
  rewritten, their metrics rows kept): at most the batch in flight is lost.
- ``genc bench`` into the same folder keeps the (task, method) pairs already in results.csv: at
  most the pair in flight is lost.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_test_digits

from generative_encoder.cli import main
from generative_encoder.data import get_dataset
from generative_encoder.io.checkpoints import load_metadata, load_tensors
from generative_encoder.training import GANConfig, train_gan
from generative_encoder.training.loop import CsvLog
from generative_encoder.training.state import STATE_KEY, load_state, save_state

POLL_SECONDS = 0.02
PATIENCE_SECONDS = 120  # the longest wait for a run to reach the point where it is killed


def _genc() -> list[str]:
    genc = Path(sys.executable).parent / "genc"
    return [str(genc)] if genc.exists() else [sys.executable, "-m", "generative_encoder.cli"]


def _start(argv: list) -> subprocess.Popen:
    return subprocess.Popen(
        _genc() + [str(a) for a in argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )


def _run(capsys, argv: list) -> str:
    """Run genc again, in this process (the one killed was a real process), and return stdout."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _kill_when(proc: subprocess.Popen, ready) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (it must still be running then)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not ready():
        if proc.poll() is not None:
            pytest.fail(
                f"genc ended (code {proc.returncode}) before it could be killed: "
                f"{proc.communicate()[1][-2000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("genc did not get far enough to be killed")
        time.sleep(POLL_SECONDS)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "genc finished before the kill"


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _json_step(path: Path) -> int:
    try:
        return json.loads(path.read_text())["step"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def _last_logged_step(path: Path) -> int:
    steps = [int(r["step"]) for r in _rows(path) if r["seconds"] is not None]  # complete rows
    return steps[-1] if steps else 0


def test_killed_training_resumes_from_its_last_checkpoint(tmp_path, capsys):
    every, steps = 5, 30
    argv = [
        "train",
        "gan",
        "--data",
        "synthetic_rock",
        "--data-opt",
        "n=64",
        "--data-opt",
        "size=28",
        "--out",
        tmp_path / "run",
        "--batch-size",
        8,
        "--latent-dim",
        8,
        "--width",
        8,
        "--checkpoint-every",
        every,
        "--sample-every",
        every,
    ]
    proc = _start(argv + ["--steps", 200])
    # killed between checkpoints: after the one at step 10, a few steps into the next interval
    _kill_when(
        proc,
        lambda: (
            _json_step(tmp_path / "run" / "gan_state.json") >= 10
            and _last_logged_step(tmp_path / "run" / "gan_log.csv") >= 13
        ),
    )

    # the state resumed from is the one file gan_state.safetensors (its header holds the step)
    header = load_metadata(tmp_path / "run" / "gan_state.safetensors")[STATE_KEY]
    checkpoint = json.loads(header)["step"]
    logged = _last_logged_step(tmp_path / "run" / "gan_log.csv")
    lost = logged - checkpoint  # steps done after the last checkpoint: recomputed
    assert checkpoint % every == 0 and 10 <= checkpoint < steps
    assert 0 <= lost <= every

    resumed = _run(capsys, argv + ["--steps", steps, "--resume"])
    assert f"after {steps} steps" in resumed
    log = _rows(tmp_path / "run" / "gan_log.csv")
    assert [int(r["step"]) for r in log] == list(range(1, steps + 1))

    # nothing but time was lost: the run ends exactly as an uninterrupted one
    straight = tmp_path / "straight"
    train_gan(
        get_dataset("synthetic_rock", "train", n=64, size=28),
        straight,
        GANConfig(
            steps=steps,
            batch_size=8,
            latent_dim=8,
            width=8,
            checkpoint_every=every,
            sample_every=every,
        ),
    )
    assert [r["loss_g"] for r in log] == [r["loss_g"] for r in _rows(straight / "gan_log.csv")]
    a = load_tensors(tmp_path / "run" / "generator.safetensors")
    b = load_tensors(straight / "generator.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    print(f"killed at step {logged}, last checkpoint {checkpoint}: {lost} step(s) lost")


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    return write_test_digits(tmp_path_factory.mktemp("digits40"), 40, width=2)


def test_killed_restore_resumes_without_redoing_finished_images(
    tiny_model_dir, digit_folder, tmp_path, capsys
):
    batch = 4
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
        "steps=20",
        "--simulate",
        "--batch-size",
        batch,
    ]
    out = tmp_path / "out"
    proc = _start(["restore", digit_folder, "-o", out, *options])
    _kill_when(proc, lambda: len(_rows(out / "metrics.csv")) >= 3 * batch)

    finished = [r["image"] for r in _rows(out / "metrics.csv")]
    written = sorted(p.name for p in (out / "restored").iterdir() if p.suffix == ".png")
    lost = sorted(set(written) - set(finished))  # restored, but killed before its metrics row
    assert 0 < len(finished) < 40 and len(finished) % batch == 0
    assert set(finished) <= set(written) and len(lost) < batch
    stamps = {
        name: (
            (out / "restored" / name).stat().st_mtime_ns,
            (out / "latents" / f"{Path(name).stem}.safetensors").stat().st_mtime_ns,
        )
        for name in finished
    }

    resumed = _run(capsys, ["restore", digit_folder, "-o", out, *options])
    assert f"skipped {len(finished)} image(s) already restored" in resumed
    assert f"restored {40 - len(finished)} image(s)" in resumed
    rows = _rows(out / "metrics.csv")
    assert [r["image"] for r in rows] == [f"digit{i:02d}.png" for i in range(40)]
    for name, stamp in stamps.items():  # finished images were not written again
        assert (
            (out / "restored" / name).stat().st_mtime_ns,
            (out / "latents" / f"{Path(name).stem}.safetensors").stat().st_mtime_ns,
        ) == stamp

    # and the numbers are those of an uninterrupted run: each batch's noise and starts are its own
    _run(capsys, ["restore", digit_folder, "-o", tmp_path / "straight", *options])
    assert rows == _rows(tmp_path / "straight" / "metrics.csv")
    print(
        f"killed after {len(finished)} of 40 images; {len(lost)} restored image(s) of the "
        "batch in flight will be redone"
    )


def test_killed_bench_keeps_the_pairs_it_finished(tiny_model_dir, tmp_path, capsys):
    spec = {
        "n_images": 4,
        "methods": ["csgm", "identity"],
        "tasks": [
            {"name": "noisy", "task": "denoise", "params": {"sigma": 0.2}},
            {"name": "hole", "task": "inpaint"},
        ],
        "method_options": {"csgm": {"steps": 100}},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    argv = ["bench", tmp_path / "spec.json", "--model", tiny_model_dir, "--out", tmp_path / "out"]
    results = tmp_path / "out" / "results.csv"
    proc = _start(argv)
    _kill_when(proc, lambda: len(_rows(results)) >= 1)

    before = _rows(results)
    assert 1 <= len(before) < 4
    outputs = {
        (r["task"], r["method"]): tmp_path
        / "out"
        / "outputs"
        / r["task"]
        / f"{r['method']}.safetensors"
        for r in before
    }
    stamps = {pair: path.stat().st_mtime_ns for pair, path in outputs.items()}

    resumed = _run(capsys, argv)
    assert f"resuming: {len(before)} of 4" in resumed
    after = _rows(results)
    assert [(r["task"], r["method"]) for r in after] == [
        (t, m) for t in ("noisy", "hole") for m in ("csgm", "identity")
    ]
    assert after[: len(before)] == before  # kept as they were (the same seconds: not run again)
    assert {pair: path.stat().st_mtime_ns for pair, path in outputs.items()} == stamps
    assert all((tmp_path / "out" / f"grid_{t}.png").exists() for t in ("noisy", "hole"))
    print(f"killed after {len(before)} of 4 (task, method) pairs; the pair in flight is redone")


def test_a_half_written_log_row_is_dropped_on_resume(tmp_path):
    path = tmp_path / "gan_log.csv"
    path.write_text("step,loss,seconds\n1,0.5,0.1\n2,0.4,0.2\n3,0.3,0.3\n1")  # killed mid-row 17
    CsvLog(path, ["step", "loss", "seconds"], keep_until=2)
    assert [r["step"] for r in _rows(path)] == ["1", "2"]


def test_the_state_resumed_from_is_one_file(tmp_path):
    """A kill between writing the state's tensors and its readable JSON copy does not matter:
    resuming reads step and optimizer settings from the tensors file's own header."""
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    rng = torch.Generator().manual_seed(0)
    save_state(tmp_path, "gan_state", 5, {"G": net}, {"G": opt}, rng, {})
    old_json = (tmp_path / "gan_state.json").read_text()
    save_state(tmp_path, "gan_state", 10, {"G": net}, {"G": opt}, rng, {})
    (tmp_path / "gan_state.json").write_text(old_json)  # as if killed before the JSON copy
    assert load_state(tmp_path, "gan_state", {"G": net}, {"G": opt}, rng)["step"] == 10


@pytest.mark.slow
def test_restore_killed_at_random_points_ends_as_an_uninterrupted_run(
    tiny_model_dir, tmp_path, capsys
):
    """Soak: 200 images, genc restore SIGKILLed at four seeded random moments (a row count, then a
    random extra delay), resumed after each; the end is the same as one uninterrupted run."""
    import random

    digits = write_test_digits(tmp_path / "digits", 200, width=3)
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
        "--simulate",
        "--batch-size",
        8,
    ]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _run(capsys, ["restore", digits, "-o", whole, *options])
    rng = random.Random(0)
    for target in sorted(rng.sample(range(8, 190, 8), 4)):
        proc = _start(["restore", digits, "-o", killed, *options])
        delay = rng.uniform(0, 0.3)  # then somewhere inside the next batch
        _kill_when(
            proc, lambda: len(_rows(killed / "metrics.csv")) >= target and not time.sleep(delay)
        )
    _run(capsys, ["restore", digits, "-o", killed, *options])
    rows, expected = _rows(killed / "metrics.csv"), _rows(whole / "metrics.csv")
    assert [r["image"] for r in rows] == [r["image"] for r in expected]
    assert rows == expected
    for name in (r["image"] for r in expected):
        assert (killed / "restored" / name).read_bytes() == (whole / "restored" / name).read_bytes()
