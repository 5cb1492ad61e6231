import csv
import json

import pytest
import torch
from conftest import write_test_digits
from PIL import Image

from generative_encoder.cli import main
from generative_encoder.io.images import write_image


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
    assert "berea64" in out.splitlines()[-1] and out.splitlines()[-1].startswith("models:")


def test_restore_simulate_scores_against_clean(capsys, tiny_model_dir, digit_files, tmp_path):
    code, out, _ = _run(
        capsys,
        "restore",
        digit_files,
        "-o",
        tmp_path,
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
    )
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == [
        "digit0.png",
        "digit1.png",
        "digit2.png",
    ]
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
    code, out, _ = _run(
        capsys,
        "restore",
        digit_files / "digit0.png",
        "-o",
        tmp_path / "out",
        "--model",
        tiny_model_dir,
        "--task",
        "inpaint",
        "--method",
        "biharmonic",
        "--mask-file",
        tmp_path / "mask.png",
    )
    assert code == 0, out
    restored = Image.open(tmp_path / "out" / "restored" / "digit0.png")
    original = Image.open(digit_files / "digit0.png")
    # the known pixels are kept by biharmonic inpainting
    assert restored.getpixel((2, 2)) == original.getpixel((2, 2))


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["restore", "nowhere.png", "-o", "x", "--task", "denoise"],
            "input nowhere.png does not exist",
        ),
        (
            ["restore", "{digits}", "-o", "x", "--task", "cs", "--param", "m=10"],
            "task 'cs' measures vectors, not images: use --simulate",
        ),
        (
            ["restore", "{digits}", "-o", "x", "--task", "denoise", "--model", "{tmp}/nomodel"],
            "does not exist",
        ),
        (
            ["restore", "{digits}", "-o", "x", "--task", "denoise", "--param", "sigma=-1"],
            "sigma must be >= 0",
        ),
        (["restore", "{digits}", "-o", "x", "--task", "blur"], "unknown task 'blur'"),
        (
            ["restore", "{digits}", "-o", "x", "--task", "denoise", "--param", "sigma"],
            "--param takes KEY=VALUE",
        ),
        (["train", "gan", "--data", "nope", "--out", "x"], "unknown dataset 'nope'"),
        (["bench", "{tmp}/missing.json", "--out", "x"], "does not exist"),
        (
            ["train", "regressor", "--model", "{model}", "--regressor-degradations", "blur"],
            "degradations must be among",
        ),
        (
            ["train", "regressor", "--model", "{model}", "--data", "synthetic_rock"]
            + ["--data-opt", "n=4", "--overwrite"],
            "the real images are 1x64x64, the model's 1x28x28",
        ),
    ],
)
def test_errors_are_one_line(capsys, tiny_model_dir, digit_files, tmp_path, argv, message):
    argv = [a.format(digits=digit_files, tmp=tmp_path, model=tiny_model_dir) for a in argv]
    if argv[0] == "restore" and "--model" not in argv:
        argv += ["--model", tiny_model_dir]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("genc: error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_bench_command(capsys, tiny_model_dir, tmp_path):
    spec = {
        "n_images": 2,
        "tasks": [{"task": "superres", "params": {"factor": 2}}],
        "methods": ["autoencoder", "baseline"],
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    code, out, _ = _run(
        capsys,
        "bench",
        tmp_path / "spec.json",
        "--model",
        tiny_model_dir,
        "--out",
        tmp_path / "out",
    )
    assert code == 0 and "| superres | bicubic | 2 |" in out
    assert (tmp_path / "out" / "grid_superres.png").exists()


def test_bench_of_some_tasks_covers_all_once_the_spec_is_done(capsys, tiny_model_dir, tmp_path):
    """Two `--tasks` runs into one folder: after the first, paired.md has its task only; the
    second finishes the spec, and paired.md then pairs both tasks."""
    spec = {
        "n_images": 2,
        "tasks": [
            {"name": "small", "task": "superres", "params": {"factor": 2}},
            {"name": "noisy", "task": "denoise", "params": {"sigma": 0.2}},
        ],
        "methods": ["autoencoder", "identity"],
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    common = ["bench", tmp_path / "spec.json", "--model", tiny_model_dir, "--out", tmp_path / "o"]

    def paired_tasks():
        lines = (tmp_path / "o" / "paired.md").read_text().splitlines()[2:]
        return sorted({line.split("|")[1].strip() for line in lines})

    code, out, _ = _run(capsys, *common, "--tasks", "small")
    assert code == 0 and "every task" not in out
    assert paired_tasks() == ["small"]
    code, out, _ = _run(capsys, *common, "--tasks", "noisy")
    assert code == 0 and "every task of" in out and "resuming: 4 of 4" in out
    assert paired_tasks() == ["noisy", "small"]


def test_restore_reports_fit_flags(capsys, tiny_model_dir, digit_files, tmp_path):
    code, out, _ = _run(
        capsys,
        "restore",
        digit_files,
        "-o",
        tmp_path,
        "--model",
        tiny_model_dir,
        "--task",
        "denoise",
        "--param",
        "sigma=0.1",
        "--method",
        "csgm",
        "--method-opt",
        "steps=5",
        "--simulate",
    )
    assert code == 0, out
    fit = json.loads((tmp_path / "fit.json").read_text())
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    flagged = [float(r["discrepancy"]) > fit["tau"] for r in rows]
    assert [int(r["flagged"]) for r in rows] == [int(f) for f in flagged]
    assert fit["tau"] >= fit["chi2_bound"] > 1 and len(fit["calibration_ratios"]) == 16
    assert f"flagged {sum(flagged)} of 3 image(s)" in out


def test_an_ensemble_writes_its_spread(capsys, tiny_model_dir, digit_files, tmp_path):
    from generative_encoder.io.images import read_image

    code, out, _ = _run(
        capsys,
        "restore",
        digit_files,
        "-o",
        tmp_path,
        *["--model", tiny_model_dir, "--task", "inpaint", "--method", "csgm", "--simulate"],
        *["--method-opt", "steps=10", "--method-opt", "ensemble=3"],
    )
    assert code == 0, out
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        stem = row["image"].rsplit(".", 1)[0]
        spread = read_image(tmp_path / "spread" / f"{stem}.png", channels=1)
        # the mean standard deviation, and its picture at 4x (8-bit, where nothing clips)
        assert 0 < float(row["spread"]) < 0.25
        assert float(spread.mean()) == pytest.approx(4 * float(row["spread"]), abs=0.01)
        assert float(spread.amin()) == 0.0  # the known pixels agree in every member


def test_candidates_and_latents_in_and_out(capsys, tiny_model_dir, digit_files, tmp_path):
    from generative_encoder.io.checkpoints import load_tensors

    common = ["--model", tiny_model_dir, "--task", "inpaint", "--method", "csgm", "--simulate"]
    code, out, _ = _run(
        capsys,
        "restore",
        digit_files,
        "-o",
        tmp_path / "a",
        *common,
        "--method-opt",
        "steps=10",
        "--method-opt",
        "restarts=3",
        "--candidates",
        2,
        "--min-distance",
        0.0,
    )
    assert code == 0, out
    saved = load_tensors(tmp_path / "a" / "latents" / "digit0.safetensors")
    assert saved["candidates_z"].shape == (2, 16)
    assert torch.equal(saved["candidates_z"][0], saved["z"])  # the best candidate is the answer
    assert saved["candidates_objective"][0] == saved["objective"]
    assert saved["candidates_objective"][1] >= saved["objective"]
    assert sorted(p.name for p in (tmp_path / "a" / "candidates").iterdir())[:2] == [
        "digit0_0.png",
        "digit0_1.png",
    ]
    assert (tmp_path / "a" / "candidates.png").is_file()
    with open(tmp_path / "a" / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    assert [float(v) for v in row["candidate_objectives"].split(";")] == pytest.approx(
        saved["candidates_objective"].tolist(), rel=1e-5
    )
    # restart 0 starts from the saved z*: keeping the best iterate, one step cannot end worse
    code, out, _ = _run(
        capsys,
        "restore",
        digit_files,
        "-o",
        tmp_path / "b",
        *common,
        "--method-opt",
        "steps=1",
        "--init-latents",
        tmp_path / "a",
    )
    assert code == 0, out
    for i in range(3):
        before = load_tensors(tmp_path / "a" / "latents" / f"digit{i}.safetensors")
        after = load_tensors(tmp_path / "b" / "latents" / f"digit{i}.safetensors")
        assert after["objective"] <= before["objective"] * (1 + 1e-5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--candidates", "3", "--method-opt", "restarts=2"], "needs at least as many restarts"),
        (["--candidates", "2", "--method", "tv"], "need a latent-search method"),
        (["--init-latents", "{tmp}"], "no saved latent in"),
        (["--lambda", "big"], "a number >= 0 or 'auto'"),
    ],
)
def test_restore_option_errors(capsys, tiny_model_dir, digit_files, tmp_path, extra, message):
    argv = [
        "restore",
        digit_files,
        "-o",
        tmp_path / "o",
        "--model",
        tiny_model_dir,
        "--task",
        "denoise",
        "--method",
        "csgm",
    ] + [a.format(tmp=tmp_path) for a in extra]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_restore_with_automatic_lambda(capsys, tiny_model_dir, digit_files, tmp_path):
    code, out, _ = _run(
        capsys,
        "restore",
        digit_files,
        "-o",
        tmp_path,
        "--model",
        tiny_model_dir,
        "--task",
        "denoise",
        "--param",
        "sigma=0.2",
        "--method",
        "csgm",
        "--method-opt",
        "steps=3",
        "--lambda",
        "auto",
        "--simulate",
    )
    assert code == 0, out
    assert json.loads((tmp_path / "restore.json").read_text())["options"]["latent_weight"] == "auto"


def test_train_regressor_adds_the_real_training_images_after_the_samples(
    capsys, tiny_model_dir, tmp_path
):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    argv = ["train", "regressor", "--model", folder, "--steps", "4", "--regressor-hidden", "8"]
    code, out, _ = _run(capsys, *argv, "--regressor-real-steps", "3", "--overwrite")
    assert code == 0 and "from real training images" in out
    meta = json.loads((folder / "regressor.json").read_text())["meta"]
    assert (meta["steps"], meta["real_steps"]) == (4, 3) and 0 < meta["real_image_mse"] < 1
    with open(folder / "regressor_log.csv") as f:
        assert [row["step"] for row in csv.DictReader(f)][-1] == "7"
    code, out, _ = _run(capsys, *argv, "--regressor-real-steps", "0", "--overwrite")
    assert code == 0 and "real training images" not in out
    assert "real_steps" not in json.loads((folder / "regressor.json").read_text())["meta"]
