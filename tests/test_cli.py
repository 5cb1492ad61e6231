import csv
import json

import pytest
import torch
from PIL import Image

from conftest import write_test_digits
from generative_encoder.cli import main
from generative_encoder.images import write_image


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    return write_test_digits(tmp_path_factory.mktemp("digits"), 3)


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0 and "mnist5k" in out and "inpaint" in out and "ge" in out


def test_restore_simulate_scores_against_clean(capsys, tiny_model_dir, digit_files, tmp_path):
    code, out, _ = _run(capsys, "restore", digit_files, "-o", tmp_path, "--model", tiny_model_dir,
                        "--task", "denoise", "--param", "sigma=0.2", "--method", "csgm",
                        "--method-opt", "steps=5", "--simulate")
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == [
        "digit0.png", "digit1.png", "digit2.png"]
    assert len(list((tmp_path / "latents").iterdir())) == 3
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["digit0.png", "digit1.png", "digit2.png"]
    assert all(0 < float(r["psnr"]) < 80 for r in rows)
    assert Image.open(tmp_path / "grid.png").height > 3 * 28  # clean | degraded | restored
    assert "psnr:" in out


def test_restore_real_inpainting_with_a_mask_file(capsys, tiny_model_dir, digit_files, tmp_path):
    mask = torch.ones(1, 28, 28)
    mask[:, 10:18, 10:18] = 0
    write_image(tmp_path / "mask.png", mask)
    code, out, _ = _run(capsys, "restore", digit_files / "digit0.png", "-o", tmp_path / "out",
                        "--model", tiny_model_dir, "--task", "inpaint", "--method", "biharmonic",
                        "--mask-file", tmp_path / "mask.png")
    assert code == 0, out
    restored = Image.open(tmp_path / "out" / "restored" / "digit0.png")
    original = Image.open(digit_files / "digit0.png")
    # the known pixels are kept by biharmonic inpainting
    assert restored.getpixel((2, 2)) == original.getpixel((2, 2))


@pytest.mark.parametrize("argv, message", [
    (["restore", "nowhere.png", "-o", "x", "--task", "denoise"], "input nowhere.png does not exist"),
    (["restore", "{digits}", "-o", "x", "--task", "cs", "--param", "m=10"],
     "task 'cs' measures vectors, not images: use --simulate"),
    (["restore", "{digits}", "-o", "x", "--task", "denoise", "--model", "{tmp}/nomodel"],
     "does not exist"),
    (["restore", "{digits}", "-o", "x", "--task", "denoise", "--param", "sigma=-1"],
     "sigma must be >= 0"),
    (["restore", "{digits}", "-o", "x", "--task", "blur"], "unknown task 'blur'"),
    (["restore", "{digits}", "-o", "x", "--task", "denoise", "--param", "sigma"],
     "--param takes KEY=VALUE"),
    (["train", "gan", "--data", "nope", "--out", "x"], "unknown dataset 'nope'"),
    (["bench", "{tmp}/missing.json", "--out", "x"], "does not exist"),
])
def test_errors_are_one_line(capsys, tiny_model_dir, digit_files, tmp_path, argv, message):
    argv = [a.format(digits=digit_files, tmp=tmp_path) for a in argv]
    if argv[0] == "restore" and "--model" not in argv:
        argv += ["--model", tiny_model_dir]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("genc: error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_bench_command(capsys, tiny_model_dir, tmp_path):
    spec = {"n_images": 2, "tasks": [{"task": "superres", "params": {"factor": 2}}],
            "methods": ["autoencoder", "baseline"]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    code, out, _ = _run(capsys, "bench", tmp_path / "spec.json", "--model", tiny_model_dir,
                        "--out", tmp_path / "out")
    assert code == 0 and "| superres | bicubic | 2 |" in out
    assert (tmp_path / "out" / "grid_superres.png").exists()
