"""Benchmarks: methods x tasks x images from a spec, scored after solving, written as
``results.csv``, ``results.md`` and one comparison grid per task; each pair's restored images are
kept in ``outputs/TASK/METHOD.safetensors`` (8-bit), so that a stopped run resumes.

A spec is a JSON file (see ``experiments/``)::

    {"data": "mnist5k", "data_options": {}, "split": "test", "n_images": 16,
     "tasks": [{"name": "denoise-0.4", "task": "denoise", "params": {"sigma": 0.4}}, ...],
     "methods": ["ge", "csgm", "autoencoder", "baseline"],
     "method_options": {"ge": {"steps": 500}}, "seed": 0}

A task may carry its own ``"methods"`` list, which replaces the spec's for that task (the
preprint gave Lasso m = 500 where the GAN methods had 128: ``{"name": "cs-m500", "task": "cs",
"params": {"m": 500}, "methods": ["baseline"]}``).
``"baseline"`` stands for each task's classical baseline (BM3D for denoising, ...). Every method
sees only (y, physics); the clean images are used after solving, for the scores and the grids.
The same spec and seed give the same numbers.

Optional analyses run after the methods and write PNG plots and tables beside the results::

    "analyses": ["fid", "convergence", "latent_map", "attributes"],
    "analysis_options": {"classifier": {"dir": "runs/classifier"}, "convergence": {"every": 10}}

(domain or Inception FID in the journal's Table 2 layout, MSE-vs-iteration curves, latent-space
pictures, attribute preservation; every key is documented in
:mod:`generative_encoder.apps.analyses`).
A spec without them writes exactly what it did before; adding them to a finished run does not
run its methods again.
"""

from __future__ import annotations

import csv
import json
import time
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..data import get_dataset, stack_images
from ..errors import ConfigError
from ..eval.metrics import (
    format_mean_std,
    measurement_residual,
    paired_difference,
    psnr,
    score,
    summarize,
)
from ..io.checkpoints import ModelBundle, load_tensors, read_json, save_tensors, write_json
from ..io.files import atomic_path, ensure_folder
from ..io.images import save_grid
from ..methods import METHODS
from ..methods.classical import BASELINE_FOR_TASK
from ..methods.latent import LatentSearch
from ..physics.seeds import LATENT_STREAM, NOISE_STREAM, image_seeds
from .analyses import BenchRun, check_analyses, run_analyses, save_curve, solve_options
from .restore import simulate_each, task_physics, viewable

GRID_IMAGES = 16  # images shown per row of a comparison grid
MODEL_RECORD = "model_info.json"  # the model.json of the model that made a bench folder's results
MAX_8BIT = 255


@dataclass(frozen=True)
class TaskSpec:
    """One degradation: ``task`` names a physics, ``params`` its options, ``name`` the label.
    ``methods``, if given, replaces the spec's method list for this task (e.g. Lasso alone at the
    larger m the preprint had to give it)."""

    name: str
    task: str
    params: dict = field(default_factory=dict)
    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BenchSpec:
    data: str = "mnist5k"
    data_options: dict = field(default_factory=dict)
    split: str = "test"
    n_images: int = 16
    first_image: int = 0
    tasks: tuple[TaskSpec, ...] = ()
    methods: tuple[str, ...] = ("ge", "csgm", "autoencoder", "baseline")
    method_options: dict = field(default_factory=dict)
    seed: int = 0
    analyses: tuple[str, ...] = ()
    analysis_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.n_images < 1:
            raise ConfigError(f"n_images must be >= 1, got {self.n_images}")
        if not self.tasks:
            raise ConfigError("a benchmark spec needs at least one task")
        for m in self.methods + sum((t.methods or () for t in self.tasks), ()):
            if m != "baseline":
                METHODS.get(m)  # unknown names fail now, with the list of known ones
        check_analyses(self.analyses, self.analysis_options)


def spec_from_dict(d: dict) -> BenchSpec:
    known = set(BenchSpec.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"unknown spec keys {sorted(unknown)}; known: {sorted(known)}")
    tasks = []
    for t in d.get("tasks", []):
        try:
            methods = t.get("methods")
            tasks.append(
                TaskSpec(
                    name=t.get("name", t["task"]),
                    task=t["task"],
                    params=t.get("params", {}),
                    methods=None if methods is None else tuple(methods),
                )
            )
        except (KeyError, AttributeError, TypeError):
            raise ConfigError(
                f"each task needs a 'task' name and optional 'params' and 'methods', got {t!r}"
            )
    if not isinstance(d.get("analyses", []), list):
        raise ConfigError(f"analyses must be a list of names, got {d['analyses']!r}")
    return BenchSpec(
        **(
            d
            | {
                "tasks": tuple(tasks),
                "methods": tuple(d.get("methods", BenchSpec.methods)),
                "analyses": tuple(d.get("analyses", ())),
            }
        )
    )


def load_spec(path: str | Path) -> BenchSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"benchmark spec {path} does not exist")
    try:
        return spec_from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None


@dataclass
class ResultRow:
    task: str
    params: str
    method: str
    n: int
    mse: float
    mse_std: float
    psnr: float
    psnr_std: float
    ssim: float
    ssim_std: float
    residual: float
    seconds: float


def resolve_methods(
    spec: BenchSpec, task: str, methods: tuple[str, ...] | None = None
) -> list[str]:
    """The methods for one task (``methods``, else the spec's): "baseline" becomes the task's
    classical baseline, and methods that cannot take this task are dropped (no baseline senses
    with a learned encoder)."""
    names = []
    for m in spec.methods if methods is None else methods:
        if m == "baseline":
            if task in BASELINE_FOR_TASK:
                names.append(BASELINE_FOR_TASK[task])
        else:
            names.append(m)
    return list(dict.fromkeys(names))


def run_bench(
    spec: BenchSpec,
    model: ModelBundle,
    out: str | Path,
    on_progress: Callable[[str], None] | None = None,
    *,
    overwrite: bool = False,
) -> list[ResultRow]:
    """Run every (task, method) pair of ``spec`` on the same images; write the result files into
    ``out`` and return the rows. ``on_progress(label)`` is called before each pair that runs.

    The results are written after every pair (with each pair's images in ``outputs/``), so a run
    that is stopped resumes: pairs already in ``out/results.csv`` from the same spec and model
    are kept, not run again, unless ``overwrite``.
    """
    out = ensure_folder(out)
    dataset = get_dataset(spec.data, spec.split, **spec.data_options)
    last = min(len(dataset), spec.first_image + spec.n_images)
    x = stack_images(dataset, range(spec.first_image, last))  # (B, C, S, S)
    if x.shape[1:] != model.image_shape:
        raise ConfigError(
            f"spec data are {tuple(x.shape[1:])} images but the model makes {model.image_shape}"
        )
    pairs = [
        (t.name, name) for t in spec.tasks for name in resolve_methods(spec, t.task, t.methods)
    ]
    # every degradation first: a bad task option fails before any pair runs
    physics_of = {t.name: task_physics(t.task, model, t.params, seed=spec.seed) for t in spec.tasks}
    done, kept, kept_tasks = _split_stored(spec, *_stored_run(spec, model, out))
    if overwrite:
        done = {}
    results = {pair: done[pair] for pair in pairs if pair in done}  # (task, method) -> row
    write_results(kept + list(results.values()), out)  # before the records: stale rows never match
    record = _spec_record(spec)
    write_json(out / "spec.json", record | {"tasks": kept_tasks + record["tasks"]})
    write_json(out / MODEL_RECORD, _record(model.info))
    indices = range(spec.first_image, last)
    noise_seeds = image_seeds(spec.seed, indices, NOISE_STREAM)
    start_seeds = image_seeds(spec.seed, indices, LATENT_STREAM)
    measured = {}  # task name -> (physics, y), for the analyses
    per_image = {}  # (task name, method) -> PSNR of each image (B,), for the paired differences
    for t in spec.tasks:
        physics = physics_of[t.name]
        y = simulate_each(physics, x, noise_seeds)
        measured[t.name] = (physics, y)
        shown = slice(0, GRID_IMAGES)
        grid, labels = [x[shown], viewable(y, physics, x)[shown]], ["clean", "degraded"]
        for name in resolve_methods(spec, t.task, t.methods):
            if (t.name, name) in done:
                x_hat = load_tensors(_output_path(out, t.name, name))["x_hat"].float() / MAX_8BIT
            else:
                if on_progress is not None:
                    on_progress(f"{t.name}: {name}")
                extra = solve_options(spec, t.name, name)  # snapshots for a convergence curve
                method = METHODS.build(
                    name, model=model, **(spec.method_options.get(name, {}) | extra)
                )
                t0 = time.perf_counter()
                seeds = {"seeds": start_seeds} if isinstance(method, LatentSearch) else {}
                if extra:
                    result = method.solve(y, physics, **seeds)  # method(y, physics) is its .x
                    x_hat = result.x.detach()
                else:
                    x_hat = method(y, physics, **seeds).detach()
                seconds = time.perf_counter() - t0
                if extra:  # scored against the clean images after solving, for the plot only
                    save_curve(out, spec, t.name, name, result, x)
                save_tensors(_output_path(out, t.name, name), {"x_hat": _to_uint8(x_hat)})
                results[t.name, name] = _row(t, name, x_hat, x, y, physics, seconds)
                write_results(kept + [results[p] for p in pairs if p in results], out)
            per_image[t.name, name] = psnr(x_hat, x)
            grid.append(x_hat[shown])
            labels.append(name)
        if (
            not all((t.name, name) in done for name in labels[2:])
            or not (out / f"grid_{t.name}.png").exists()
        ):
            save_grid(out / f"grid_{t.name}.png", grid, labels)
    with atomic_path(out / "paired.md") as tmp:
        tmp.write_text(paired_table(per_image))
    if spec.analyses:
        restored = lambda task, name: (  # noqa: E731
            load_tensors(_output_path(out, task, name))["x_hat"].float() / MAX_8BIT
        )
        run_analyses(
            BenchRun(
                spec=spec,
                model=model,
                out=out,
                x=x,
                dataset=dataset,
                indices=indices,
                measured=measured,
                seeds=start_seeds,
                rows=[results[p] for p in pairs],
                restored=restored,
            ),
            on_progress,
        )
    from .report import write_report

    write_report(out)  # report.html: the table, grids, plots and spec in one page
    return [results[p] for p in pairs]


def finished_rows(
    spec: BenchSpec, model: ModelBundle, out: str | Path
) -> dict[tuple[str, str], ResultRow]:
    """Rows of ``out/results.csv`` that a run of the same spec with the same model finished for
    the tasks of ``spec`` (same name, task and parameters), by (task name, method)."""
    return _split_stored(spec, *_stored_run(spec, model, Path(out)))[0]


def _split_stored(
    spec: BenchSpec, rows: list[ResultRow], stored: dict
) -> tuple[dict[tuple[str, str], ResultRow], list[ResultRow], list]:
    """(finished rows of ``spec``'s tasks by (task, method), rows and task records of the tasks
    ``spec`` does not run, kept as they are: ``genc bench --tasks`` runs a subset)."""
    current = {t["name"]: _task_key(t) for t in _spec_record(spec)["tasks"]}
    done = {
        (r.task, r.method): r
        for r in rows
        if r.task in current and _task_key(stored.get(r.task, {})) == current[r.task]
    }
    others = [t for name, t in stored.items() if name not in current]
    return done, [r for r in rows if r.task not in current], others


def _stored_run(spec: BenchSpec, model: ModelBundle, out: Path) -> tuple[list[ResultRow], dict]:
    """(rows with their output files, task records by name) of the run in ``out`` when it used
    the same data, images, seed, methods and options (the tasks may differ) and the same model;
    else ([], {})."""
    if not (out / "spec.json").is_file() or not (out / MODEL_RECORD).is_file():
        return [], {}
    stored = read_json(out / "spec.json")

    def base(record: dict) -> dict:
        return {k: v for k, v in _without_analyses(record).items() if k != "tasks"}

    if base(stored) != base(_spec_record(spec)) or read_json(out / MODEL_RECORD) != _record(
        model.info
    ):
        return [], {}
    if not (out / "results.csv").is_file():
        return [], {}
    types = typing.get_type_hints(ResultRow)
    try:
        with (out / "results.csv").open(newline="") as f:
            rows = [ResultRow(**{k: types[k](v) for k, v in r.items()}) for r in csv.DictReader(f)]
        tasks = {t["name"]: t for t in stored["tasks"]}
    except (KeyError, TypeError, ValueError):  # edited by hand: run it all again
        return [], {}
    return [r for r in rows if _output_path(out, r.task, r.method).is_file()], tasks


def _task_key(record: dict) -> tuple:
    """What a task's results depend on: its degradation (its ``methods`` only pick the pairs)."""
    return record.get("task"), json.dumps(record.get("params", {}), sort_keys=True)


def _record(obj) -> dict:
    """``obj`` as it reads back from JSON (tuples become lists), to compare with a file."""
    return json.loads(json.dumps(obj, default=str))


ANALYSIS_FIELDS = ("analyses", "analysis_options")


def _without_analyses(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ANALYSIS_FIELDS}


def _spec_record(spec: BenchSpec, analyses: bool = True) -> dict:
    """The spec as ``spec.json`` holds it; without the analysis keys when it asks for none (the
    file of a spec without analyses is what it always was) or when ``analyses`` is False."""
    record = _record(asdict(spec))
    for task in record["tasks"]:  # a task without its own methods reads as it always did
        if task.get("methods") is None:
            task.pop("methods", None)
    if analyses and (spec.analyses or spec.analysis_options):
        return record
    return _without_analyses(record)


def _output_path(out: Path, task: str, method: str) -> Path:
    return out / "outputs" / task / f"{method}.safetensors"


def _to_uint8(x: Tensor) -> Tensor:
    """Images in [0, 1] as 8-bit levels, as the grids show them."""
    return (x.clamp(0, 1) * MAX_8BIT).round().to(torch.uint8)


def _row(
    t: TaskSpec, method: str, x_hat: Tensor, x: Tensor, y: Tensor, physics, seconds: float
) -> ResultRow:
    s = {k: summarize(v) for k, v in score(x_hat, x).items()}
    with torch.no_grad():
        residual = measurement_residual(y, physics.A(x_hat)).mean().item()
    return ResultRow(
        task=t.name,
        params=json.dumps(t.params, sort_keys=True),
        method=method,
        n=len(x),
        mse=s["mse"]["mean"],
        mse_std=s["mse"]["std"],
        psnr=s["psnr"]["mean"],
        psnr_std=s["psnr"]["std"],
        ssim=s["ssim"]["mean"],
        ssim_std=s["ssim"]["std"],
        residual=residual,
        seconds=round(seconds, 3),
    )


def markdown_table(rows: list[ResultRow]) -> str:
    lines = [
        "| task | method | n | MSE | PSNR (dB) | SSIM | residual | seconds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.task} | {r.method} | {r.n} | {format_mean_std(r.mse, r.mse_std, 5)} | "
            f"{format_mean_std(r.psnr, r.psnr_std, 2)} | "
            f"{format_mean_std(r.ssim, r.ssim_std, 3)} | "
            f"{r.residual:.2e} | {r.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


def paired_table(per_image: dict[tuple[str, str], Tensor]) -> str:
    """Markdown: per task, the method of best mean PSNR against each other method, as the paired
    difference over the same images with its 95 % confidence interval; "within noise" when the
    interval contains 0."""
    lines = [
        "| task | best | other | PSNR gain (dB) | 95 % CI | t | n | |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for task in dict.fromkeys(t for t, _ in per_image):
        methods = {m: v for (t, m), v in per_image.items() if t == task}
        best = max(methods, key=lambda m: methods[m].mean().item())
        for other, values in methods.items():
            if other == best or len(values) < 2:
                continue
            d = paired_difference(methods[best], values)
            verdict = "within noise" if d["low"] <= 0 else ""
            lines.append(
                f"| {task} | {best} | {other} | {d['mean']:.2f} | "
                f"[{d['low']:.2f}, {d['high']:.2f}] | {d['t']:.1f} | {d['n']} | "
                f"{verdict} |"
            )
    return "\n".join(lines) + "\n"


def write_results(rows: list[ResultRow], out: Path) -> None:
    """``results.csv`` and ``results.md``, each written atomically."""
    with atomic_path(out / "results.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(ResultRow.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(markdown_table(rows))
