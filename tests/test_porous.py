"""Porous-media measures against hand-computed values, and `genc evaluate-model`."""

import json

import numpy as np
import pytest
import torch

from generative_encoder.apps.evaluate import evaluate_model, reconstruction_mse
from generative_encoder.cli import main
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.errors import DataError
from generative_encoder.eval import porous
from generative_encoder.io.checkpoints import load_model


def _image(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float32))[None, None]


def test_porosity_and_s2_of_stripes():
    # vertical stripes two pixels wide, period four: along rows S2 = 0.5, 0.25, 0, 0.25, 0.5 ...
    # (of the pairs that fit), along columns S2 = 0.5 at every r
    stripes = np.tile([1, 1, 0, 0], (16, 4))  # 16 x 16
    s2 = porous.two_point(_image(stripes), r_max=4)[0]
    assert porous.porosity(_image(stripes)).item() == 0.5
    across = []
    for r in range(5):
        a = stripes[:, r:] * stripes[:, : stripes.shape[1] - r]
        across.append(a.mean())
    assert s2.tolist() == pytest.approx([(a + 0.5) / 2 for a in across])
    assert s2[2].item() == pytest.approx(0.25)  # nothing two apart across, 0.5 down


def test_s2_matches_a_direct_count_on_random_images():
    rng = np.random.default_rng(0)
    x = rng.random((3, 1, 20, 20)) > 0.6
    s2 = porous.two_point(torch.from_numpy(x.astype(np.float32)), r_max=6)
    for b in range(3):
        img = x[b, 0].astype(float)
        for r in range(7):
            rows = [img[i, j] * img[i, j + r] for i in range(20) for j in range(20 - r)]
            cols = [img[i, j] * img[i + r, j] for i in range(20 - r) for j in range(20)]
            assert s2[b, r].item() == pytest.approx((np.mean(rows) + np.mean(cols)) / 2)


def test_euler_density_and_perimeter_of_a_square_and_a_ring():
    square = np.zeros((40, 40))
    square[10:30, 10:30] = 1
    ring = square.copy()
    ring[15:25, 15:25] = 0
    euler = porous.euler_density(torch.cat([_image(square), _image(ring)]))
    assert euler.tolist() == pytest.approx([1000 / 1600, 0.0])
    perimeter = porous.specific_perimeter(_image(square)).item() * 1600
    assert perimeter == pytest.approx(80, rel=0.1)  # 4 x 20 pixels


def test_restoration_errors_are_zero_for_the_clean_image_and_grow_with_damage():
    rng = np.random.default_rng(1)
    x = torch.from_numpy((rng.random((2, 1, 32, 32)) > 0.7).astype(np.float32))
    same = porous.restoration_errors(x, x)
    assert all(float(v.abs().max()) == 0 for v in same.values())
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    damaged = porous.restoration_errors(blurred, x)
    assert float(damaged["porosity_err"].min()) > 0.01
    assert porous.compare_sets(x, x)["s2_max_relative_error"] == 0.0


def test_measures_refuse_colour_images():
    with pytest.raises(DataError, match=r"need \(B, 1, H, W\)"):
        porous.porosity(torch.rand(1, 3, 8, 8))


def test_evaluate_model_reports_what_it_measured(tiny_model_dir, tmp_path):
    model = load_model(tiny_model_dir)
    train, test = get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")
    report = evaluate_model(
        model,
        train,
        test,
        tmp_path / "ev",
        n=16,
        n_fit=3,
        steps=4,
        restarts=1,
        classifier_steps=3,
    )
    saved = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert saved == pytest.approx(report)
    from generative_encoder.apps.evaluate import pick

    real = stack_images(test, pick(test, 16))
    assert report["encoder_mse_real"] == pytest.approx(reconstruction_mse(model, real))
    assert 0 < report["representation_mse"] < 0.5
    assert report["fid_features"] == "labels" and report["fid_generated"] > 0
    assert "rock" not in report  # digits are not binary
    assert (tmp_path / "ev" / "samples.png").is_file()


def test_evaluate_model_on_binary_images_compares_samples_with_both_splits(
    tiny_model_dir, tmp_path
):
    from generative_encoder.apps.evaluate import markdown, pick

    model = load_model(tiny_model_dir)
    rock = dict(size=28, n=40)
    train = get_dataset("synthetic_rock", "train", **rock)
    test = get_dataset("synthetic_rock", "test", **rock)
    report = evaluate_model(model, train, test, tmp_path / "ev", n=8, n_fit=1, steps=1, fid=False)
    held_out, training = report["rock"], report["rock_training"]
    reference = report["rock_training_vs_held_out"]
    test_real = stack_images(test, pick(test, 8))  # the 4 of the test split
    train_real = stack_images(train, pick(train, len(test_real)))
    assert training["porosity"]["real"] == pytest.approx(porous.porosity(train_real).mean().item())
    assert held_out["porosity"]["real"] == pytest.approx(porous.porosity(test_real).mean().item())
    # one set of samples against both splits; the reference compares the two real splits
    assert training["porosity"]["generated"] == held_out["porosity"]["generated"]
    assert reference["porosity"] == {
        "real": held_out["porosity"]["real"],
        "generated": training["porosity"]["real"],
    }
    assert reference == porous.compare_sets(test_real, train_real)
    table = markdown(report)
    assert "| porous-media measure | held-out | training | samples |" in table
    assert f"| {held_out['porosity']['real']:.4f} | {training['porosity']['real']:.4f} |" in table
    assert (tmp_path / "ev" / "s2.png").is_file()


def test_cli_evaluate_model_prints_the_table(tiny_model_dir, tmp_path, capsys):
    argv = ["evaluate-model", str(tiny_model_dir), "-o", str(tmp_path / "ev"), "--n", "8"]
    assert main(argv + ["--n-fit", "2", "--steps", "2", "--no-fid"]) == 0
    out = capsys.readouterr().out
    assert "representation MSE" in out and "domain FID" not in out


def test_bench_porous_analysis_scores_each_restoration(tiny_model_dir, tmp_path):
    from generative_encoder.apps.bench import run_bench, spec_from_dict

    spec = {
        "data": "synthetic_rock",
        "data_options": {"size": 28, "n": 40},
        "n_images": 4,
        "tasks": [{"name": "noisy", "task": "denoise", "params": {"sigma": 0.3}}],
        "methods": ["identity", "tv"],
        "analyses": ["porous"],
        "analysis_options": {"porous": {"r_max": 8}},
    }
    rows = run_bench(spec_from_dict(spec), load_model(tiny_model_dir), tmp_path / "b")
    table = (tmp_path / "b" / "porous.csv").read_text().splitlines()
    assert table[0] == "task,method,mse,porosity_err,s2_err,euler_err"
    assert [line.split(",")[1] for line in table[1:]] == [r.method for r in rows]
    errors = {line.split(",")[1]: [float(v) for v in line.split(",")[3:]] for line in table[1:]}
    # the noisy patches themselves (identity) are far from the clean porosity; TV comes closer
    assert errors["identity"][0] > errors["tv"][0]
    assert "| noisy | tv |" in (tmp_path / "b" / "porous.md").read_text()
