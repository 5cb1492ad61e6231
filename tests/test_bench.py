import csv
import json
import re

import pytest
import torch
from PIL import Image

from generative_encoder.apps.bench import load_spec, run_bench, spec_from_dict
from generative_encoder.data import get_dataset
from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import load_model, load_tensors

SPEC = {
    "data": "mnist5k",
    "split": "test",
    "n_images": 3,
    "tasks": [
        {"name": "noisy", "task": "denoise", "params": {"sigma": 0.2}},
        {"name": "hole", "task": "inpaint", "params": {"mask": "block"}},
        {"name": "code", "task": "encoder_cs"},
    ],
    "methods": ["ge", "csgm", "autoencoder", "baseline"],
    "method_options": {"ge": {"steps": 5}, "csgm": {"steps": 5}},
}


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_bench_writes_tables_and_grids_and_repeats(tiny_model_dir, tmp_path):
    model = load_model(tiny_model_dir)
    rows = run_bench(spec_from_dict(SPEC), model, tmp_path / "a")
    # "baseline" is BM3D for denoising, biharmonic for inpainting, none for encoder sensing
    assert [(r.task, r.method) for r in rows] == [
        ("noisy", "ge"),
        ("noisy", "csgm"),
        ("noisy", "autoencoder"),
        ("noisy", "bm3d"),
        ("hole", "ge"),
        ("hole", "csgm"),
        ("hole", "autoencoder"),
        ("hole", "biharmonic"),
        ("code", "ge"),
        ("code", "csgm"),
        ("code", "autoencoder"),
    ]
    table = _read(tmp_path / "a" / "results.csv")
    assert len(table) == len(rows) and all(int(r["n"]) == 3 for r in table)
    assert all(0 < float(r["psnr"]) < 80 and 0 <= float(r["mse"]) <= 1 for r in table)
    # the latent searches ran their 5 steps (no early stopping); other methods have no steps
    assert {r["method"]: r["steps"] for r in table[:4]} == {
        "ge": "5",
        "csgm": "5",
        "autoencoder": "",
        "bm3d": "",
    }
    md = (tmp_path / "a" / "results.md").read_text()
    assert md.count("\n") == 2 + len(rows) and "| hole | biharmonic | 3 |" in md
    grid = Image.open(tmp_path / "a" / "grid_noisy.png")
    assert grid.height > 6 * 28  # clean, degraded and four methods, one row each
    assert json.loads((tmp_path / "a" / "spec.json").read_text())["n_images"] == 3

    again = run_bench(spec_from_dict(SPEC), model, tmp_path / "b")
    # bit-identical, but BM3D's own arithmetic, which varies in the 8th digit
    flat = lambda rs: [v for r in rs if r.method != "bm3d" for v in (r.mse, r.ssim)]  # noqa: E731
    assert flat(again) == flat(rows)
    bm3d = lambda rs: [r.mse for r in rs if r.method == "bm3d"]  # noqa: E731
    assert bm3d(again) == pytest.approx(bm3d(rows), rel=1e-6)


def test_an_image_gets_the_same_result_whichever_images_surround_it(tiny_model_dir, tmp_path):
    """Noise and starts are seeded by the image's index: images 1 and 2 of a 3-image run equal a
    run of those two alone."""
    model = load_model(tiny_model_dir)
    spec = SPEC | {"tasks": SPEC["tasks"][:1], "methods": ["ge", "csgm"]}
    run_bench(spec_from_dict(spec), model, tmp_path / "three")
    run_bench(spec_from_dict(spec | {"first_image": 1, "n_images": 2}), model, tmp_path / "two")
    for method in ("ge", "csgm"):
        three, two = (
            load_tensors(tmp_path / run / "outputs" / "noisy" / f"{method}.safetensors")["x_hat"]
            for run in ("three", "two")
        )
        assert torch.equal(three[1:], two)


def test_task_methods_replace_the_spec_methods(tiny_model_dir, tmp_path):
    spec = SPEC | {
        "tasks": [SPEC["tasks"][0] | {"methods": ["baseline"]}, SPEC["tasks"][1]],
        "methods": ["autoencoder"],
    }
    rows = run_bench(spec_from_dict(spec), load_model(tiny_model_dir), tmp_path)
    assert [(r.task, r.method) for r in rows] == [("noisy", "bm3d"), ("hole", "autoencoder")]
    tasks = json.loads((tmp_path / "spec.json").read_text())["tasks"]
    assert tasks[0]["methods"] == ["baseline"] and "methods" not in tasks[1]
    with pytest.raises(ConfigError, match="unknown method 'magic'"):
        spec_from_dict(SPEC | {"tasks": [SPEC["tasks"][0] | {"methods": ["magic"]}]})


def test_bad_specs(tmp_path):
    with pytest.raises(ConfigError, match="unknown spec keys \\['colour'\\]"):
        spec_from_dict(SPEC | {"colour": "red"})
    with pytest.raises(ConfigError, match="unknown method 'magic'"):
        spec_from_dict(SPEC | {"methods": ["magic"]})
    with pytest.raises(ConfigError, match="tasks must be a non-empty list of task objects"):
        spec_from_dict(SPEC | {"tasks": []})
    bad = tmp_path / "spec.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_spec(bad)


def test_spec_without_analyses_writes_the_same_spec_file(tiny_model_dir, tmp_path):
    """No analyses asked for: spec.json has no analysis keys and no analysis file is written."""
    model = load_model(tiny_model_dir)
    spec = SPEC | {"tasks": SPEC["tasks"][:1], "methods": ["autoencoder"]}
    run_bench(spec_from_dict(spec), model, tmp_path)
    written = json.loads((tmp_path / "spec.json").read_text())
    assert "analyses" not in written and "analysis_options" not in written
    assert not (tmp_path / "outputs" / "_analysis").exists()
    assert not any(
        (tmp_path / f).exists()
        for f in ("fid.md", "convergence.png", "attributes.md", "latent_map.md")
    )
    # asking for analyses later keeps the finished pair (and records the analyses)
    progress = []
    run_bench(
        spec_from_dict(
            spec
            | {
                "analyses": ["fid"],
                "analysis_options": {"classifier": {"steps": 5}, "fid": {"n_reference": 10}},
            }
        ),
        model,
        tmp_path,
        progress.append,
    )
    assert progress == ["analysis: fid"]
    assert json.loads((tmp_path / "spec.json").read_text())["analyses"] == ["fid"]


def test_a_run_of_some_tasks_adds_to_the_folder_and_keeps_the_others(tiny_model_dir, tmp_path):
    """`genc bench --tasks deblur` into a finished folder: the other tasks' rows stay, a full
    rerun then runs nothing, and a task whose parameters changed is run again."""
    model = load_model(tiny_model_dir)
    spec = SPEC | {"methods": ["autoencoder", "identity"], "tasks": SPEC["tasks"][:2]}
    full = run_bench(spec_from_dict(spec), model, tmp_path)
    before = _read(tmp_path / "results.csv")
    only_hole = spec | {"tasks": [SPEC["tasks"][1]]}
    run_bench(spec_from_dict(only_hole), model, tmp_path, on_progress=pytest.fail)
    assert _read(tmp_path / "results.csv") == before  # nothing redone, nothing dropped
    assert [t["name"] for t in json.loads((tmp_path / "spec.json").read_text())["tasks"]] == [
        "noisy",
        "hole",
    ]
    assert run_bench(spec_from_dict(spec), model, tmp_path, on_progress=pytest.fail) == full

    ran = []
    louder = spec | {"tasks": [SPEC["tasks"][0] | {"params": {"sigma": 0.5}}]}
    rows = run_bench(spec_from_dict(louder), model, tmp_path, on_progress=ran.append)
    assert ran == ["noisy: autoencoder", "noisy: identity"]
    after = _read(tmp_path / "results.csv")
    assert after[:2] == before[2:]  # the hole rows, kept; then the new noisy rows
    assert [float(r["mse"]) for r in after[2:]] == pytest.approx([r.mse for r in rows])
    assert rows[1].mse > float(before[1]["mse"])  # identity at sigma 0.5 is worse than at 0.2


def test_a_method_added_to_the_spec_runs_alone(tiny_model_dir, tmp_path):
    """Adding a method to a finished spec runs that method only; changing one method's options
    runs that method again and keeps the others' rows as they were."""
    model = load_model(tiny_model_dir)
    spec = SPEC | {"tasks": SPEC["tasks"][:1], "methods": ["identity"]}
    first = run_bench(spec_from_dict(spec), model, tmp_path)
    ran = []
    wider = spec | {"methods": ["identity", "csgm"], "method_options": {"csgm": {"steps": 3}}}
    rows = run_bench(spec_from_dict(wider), model, tmp_path, on_progress=ran.append)
    assert ran == ["noisy: csgm"]
    assert rows[0] == first[0]
    ran.clear()
    longer = wider | {"method_options": {"csgm": {"steps": 4}}}
    again = run_bench(spec_from_dict(longer), model, tmp_path, on_progress=ran.append)
    assert ran == ["noisy: csgm"]
    assert again[0] == first[0] and again[1].mse != rows[1].mse
    assert json.loads((tmp_path / "spec.json").read_text())["method_options"] == {
        "csgm": {"steps": 4}
    }


@pytest.mark.parametrize("damage", ["[1, 2]", "{oops", '{"tasks": 3}'])
def test_damaged_records_in_the_folder_mean_a_fresh_run(damage, tiny_model_dir, tmp_path):
    """A spec.json edited by hand or cut short is not resumed from; every pair runs again."""
    model = load_model(tiny_model_dir)
    spec = spec_from_dict(
        SPEC | {"n_images": 1, "tasks": SPEC["tasks"][:1], "methods": ["identity"]}
    )
    first = run_bench(spec, model, tmp_path)
    (tmp_path / "spec.json").write_text(damage)
    ran = []
    again = run_bench(spec, model, tmp_path, on_progress=ran.append)
    assert ran == ["noisy: identity"]
    assert [(r.task, r.method, r.mse) for r in again] == [(r.task, r.method, r.mse) for r in first]
    assert json.loads((tmp_path / "spec.json").read_text())["tasks"][0]["name"] == "noisy"


def test_more_images_than_the_split_holds_are_refused_before_any_file(tiny_model_dir, tmp_path):
    n = len(get_dataset("mnist5k", "test"))
    spec = spec_from_dict(SPEC | {"first_image": n - 2, "n_images": 3})
    with pytest.raises(
        ConfigError, match=f"must be <= {n}, the size of the test split.*{n - 2} \\+ 3"
    ):
        run_bench(spec, load_model(tiny_model_dir), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_paired_md_gives_each_tasks_best_against_the_others(tiny_model_dir, tmp_path):
    """paired.md: per task, the best mean PSNR against every other method, as paired differences
    of the stored outputs over the same images (PSNR gain and MSE difference, 95 % intervals)."""
    from generative_encoder.data import get_dataset, stack_images
    from generative_encoder.eval.metrics import mse, paired_difference, psnr

    spec = SPEC | {"tasks": SPEC["tasks"][:1], "methods": ["csgm", "autoencoder", "baseline"]}
    rows = run_bench(spec_from_dict(spec), load_model(tiny_model_dir), tmp_path)
    x = stack_images(get_dataset("mnist5k", "test"), range(3))
    outputs = {
        r.method: load_tensors(tmp_path / "outputs" / "noisy" / f"{r.method}.safetensors")["x_hat"]
        .float()
        .div(255)
        for r in rows
    }
    best = max(outputs, key=lambda m: psnr(outputs[m], x).mean().item())
    lines = (tmp_path / "paired.md").read_text().splitlines()[2:]
    assert len(lines) == 2 and all(line.startswith(f"| noisy | {best} | ") for line in lines)
    for line in lines:  # the stored outputs are 8-bit: equal to the rounding of that
        cells = line.split("|")
        other = cells[3].strip()
        gain = paired_difference(psnr(outputs[best], x), psnr(outputs[other], x))
        cost = paired_difference(mse(outputs[other], x), mse(outputs[best], x))
        numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", cells[4] + cells[5])]
        assert numbers[:3] == pytest.approx([gain[k] for k in ("mean", "low", "high")], abs=0.02)
        assert numbers[3:] == pytest.approx([cost[k] for k in ("mean", "low", "high")], abs=1e-4)


def test_steps_column_reports_search_and_refinement_effort():
    """results.csv's ``steps``: mean steps per start, then the mean refinement steps chosen."""
    from types import SimpleNamespace

    from generative_encoder.apps.bench import _steps

    ran = torch.tensor([[10, 5], [20, 5]])  # (B, R): early stopping ended rows at 5 to 20 steps
    assert _steps(SimpleNamespace(steps_run=ran, adapt_steps=None, ilo_steps=None)) == {
        "steps": "10"
    }
    assert _steps(SimpleNamespace(steps_run=ran, adapt_steps=[0, 30], ilo_steps=None)) == {
        "steps": "10 + 15"
    }
    assert _steps(SimpleNamespace(steps_run=ran, adapt_steps=None, ilo_steps=[7])) == {
        "steps": "10 + 7"
    }
    assert _steps(None) == {}
