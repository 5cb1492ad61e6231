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
``"baseline"`` stands for each task's classical baseline (BM3D for denoising, ...); beside the
method it stands for (``["baseline", "bm3d"]`` for denoising) that pair runs once. Every method
sees only (y, physics); the clean images are used after solving, for the scores and the grids.
The same spec and seed give the same numbers.

A task's ``name`` (default: its ``task``) names its files, ``grid_NAME.png`` and
``outputs/NAME/METHOD.safetensors``, so a spec from someone else cannot write elsewhere: it must
be 1 to 100 letters, digits, ``-``, ``_`` and ``.``, not starting or ending with ``.``
(:func:`generative_encoder.io.names.check_file_name`), and the names of a spec must differ, also
ignoring case. A method listed twice in one list, a field of the wrong type or range (``n_images``
an integer >= 1, ``params`` an object, no NaN or infinity, ...) and more images than the split
holds are refused with one line naming the field, before anything is written. Nothing is written
outside ``out``: every path is resolved (symbolic links followed) and checked to lie inside it.

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
import inspect
import json
import math
import numbers
import time
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..data import DATASETS, SPLITS, get_dataset, stack_images
from ..errors import CheckpointError, ConfigError
from ..eval.metrics import (
    format_mean_std,
    measurement_residual,
    mse,
    paired_difference,
    psnr,
    score,
    summarize,
)
from ..io.checkpoints import ModelBundle, load_tensors, read_json, save_tensors, write_json
from ..io.files import atomic_path, ensure_folder
from ..io.images import save_grid
from ..io.names import check_file_name, path_inside
from ..methods import METHODS
from ..methods.classical import BASELINE_FOR_TASK
from ..methods.latent import LatentSearch
from ..physics import TASKS
from ..physics.seeds import LATENT_STREAM, NOISE_STREAM, image_seeds
from ..registry import check_arguments
from ..solve import SearchResult
from .analyses import OPTIONS as ANALYSIS_OPTIONS
from .analyses import BenchRun, check_analyses, run_analyses, save_curve, solve_options
from .restore import simulate_each, task_physics, viewable

GRID_IMAGES = 16  # images shown per row of a comparison grid
MODEL_RECORD = "model_info.json"  # the model.json of the model that made a bench folder's results
MAX_8BIT = 255


@dataclass(frozen=True)
class TaskSpec:
    """One degradation: ``task`` names a physics, ``params`` its options, ``name`` the label and
    the name of its files (see :func:`check_file_name`). ``methods``, if given, replaces the
    spec's method list for this task (e.g. Lasso alone at the larger m the preprint had to give
    it)."""

    name: str
    task: str
    params: dict = field(default_factory=dict)
    methods: tuple[str, ...] | None = None

    def __post_init__(self):
        _lists_as_tuples(self, "methods")
        if not isinstance(self.task, str):
            raise ConfigError(f"task must be a task name (e.g. 'denoise'), got {_shown(self.task)}")
        builder = TASKS.get(self.task)  # an unknown task fails now, with the known ones
        check_file_name("task", self.name)
        label = f"task {self.name!r}"
        _check_values(f"{label}: params", self.params)
        taken = [
            p.name
            for p in inspect.signature(builder).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        unknown = sorted(set(self.params) - set(taken))
        if unknown:
            raise ConfigError(
                f"task {self.task!r} has no parameter {', '.join(unknown)}; "
                f"it takes {', '.join(taken)}"
            )
        if self.methods is not None:
            _check_methods(f"{label}: methods", self.methods)


@dataclass(frozen=True)
class BenchSpec:
    """A benchmark: images ``first_image`` .. ``first_image + n_images - 1`` of ``data``'s
    ``split``, each task of ``tasks`` solved by each method of ``methods`` (or the task's own).
    Every field is checked here: a wrong type or range raises a one-line ConfigError naming the
    field and the value."""

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
        _lists_as_tuples(self, "tasks", "methods", "analyses")
        if not isinstance(self.data, str):
            raise ConfigError(f"data must be a dataset name, got {_shown(self.data)}")
        DATASETS.get(self.data)
        _check_values("data_options", self.data_options)
        if "split" in self.data_options:
            raise ConfigError("data_options cannot hold 'split'; it is the spec's own key")
        if not isinstance(self.split, str) or self.split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {_shown(self.split)}")
        _check_int("n_images", self.n_images, 1)
        _check_int("first_image", self.first_image, 0)
        _check_int("seed", self.seed, 0)
        if not isinstance(self.tasks, tuple) or not self.tasks:
            raise ConfigError(
                f"tasks must be a non-empty list of task objects, got {_shown(self.tasks)}"
            )
        seen = {}  # casefolded name -> name: folders that differ in case only are one on macOS
        for t in self.tasks:
            if not isinstance(t, TaskSpec):
                raise ConfigError(f"each task must be a TaskSpec, got {_shown(t)}")
            if t.name.casefold() in seen:
                other = seen[t.name.casefold()]
                same = "is used twice" if other == t.name else f"and {other!r} differ in case only"
                raise ConfigError(
                    f"task name {t.name!r} {same}; each task needs a name of its own (it names "
                    "the task's files)"
                )
            seen[t.name.casefold()] = t.name
        _check_methods("methods", self.methods)
        _check_values("method_options", self.method_options)
        for name, options in self.method_options.items():
            if name == "baseline":
                raise ConfigError(
                    "method_options are keyed by the method's own name (e.g. 'bm3d'), "
                    "not 'baseline'"
                )
            builder = METHODS.get(check_file_name("method", name))
            if not isinstance(options, dict):
                raise ConfigError(
                    f"method_options[{name!r}] must be an object of options, got {_shown(options)}"
                )
            if "model" in options:
                raise ConfigError(
                    f"method_options[{name!r}] cannot hold 'model'; the bench's model is used"
                )
            check_arguments(builder, f"method {name!r}", None, **options)
        if not isinstance(self.analyses, tuple):
            raise ConfigError(f"analyses must be a list of names, got {_shown(self.analyses)}")
        for a in self.analyses:
            if not isinstance(a, str):
                raise ConfigError(f"each of analyses must be a name, got {_shown(a)}")
        _check_unique("analyses", self.analyses)
        _check_values("analysis_options", self.analysis_options)
        _check_analysis_kinds(self.analysis_options)
        check_analyses(self.analyses, self.analysis_options)


MAX_DEPTH = 16  # levels of lists and objects in a spec's option values
_TASK_KEYS = ("name", "task", "params", "methods")


def _shown(value: object, width: int = 60) -> str:
    """``repr(value)`` (a tuple as the JSON list it was read from), cut to about ``width``
    characters: an error stays one readable line."""
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= width else f"{text[: width - 3]}..."


def _lists_as_tuples(spec: object, *names: str) -> None:
    """Replace the fields ``names`` of the frozen dataclass ``spec`` that are lists (as JSON gives
    them) by tuples; other values stay, to be refused by name."""
    for name in names:
        if isinstance(getattr(spec, name), list):
            object.__setattr__(spec, name, tuple(getattr(spec, name)))


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {_shown(value)}")


def _check_unique(label: str, names: tuple) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{label} lists {name!r} twice")
        seen.add(name)


def _check_methods(label: str, methods: object) -> None:
    """A non-empty tuple of distinct method names, each known or "baseline"."""
    if not isinstance(methods, tuple) or not methods:
        raise ConfigError(
            f"{label} must be a non-empty list of method names, got {_shown(methods)}"
        )
    for m in methods:
        if check_file_name("method", m) != "baseline":
            METHODS.get(m)  # an unknown name fails now, with the known ones
    _check_unique(label, methods)


def _check_values(label: str, options: object) -> None:
    """``options`` is an object (dict) whose keys are strings, whose numbers are finite and whose
    lists and objects nest at most ``MAX_DEPTH`` levels."""
    if not isinstance(options, dict):
        raise ConfigError(f"{label} must be an object, got {_shown(options)}")
    stack = [(f"{label}", options, 1)]
    while stack:
        where, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"{label} nests more than {MAX_DEPTH} levels of lists and objects")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ConfigError(f"{where} keys must be strings, got {_shown(key)}")
                stack.append((f"{where}[{key!r}]", item, depth + 1))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")


_KINDS = {bool: "true or false", int: "an integer", str: "a string", list: "a list"}


def _check_analysis_kinds(options: dict) -> None:
    """Each analysis option whose default is a flag, an integer, a string or a list holds one
    too (unknown names and options are left to :func:`check_analyses`)."""
    for analysis, given in options.items():
        if analysis not in ANALYSIS_OPTIONS or not isinstance(given, dict):
            continue
        for key, value in given.items():
            kind = type(ANALYSIS_OPTIONS[analysis].get(key))
            if kind in _KINDS and (
                isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)
            ):
                raise ConfigError(
                    f"analysis_options[{analysis!r}][{key!r}] must be {_KINDS[kind]}, "
                    f"got {_shown(value)}"
                )


def _task_from(i: int, t: object) -> TaskSpec:
    """``tasks[i]`` of a parsed spec as a TaskSpec (its ``name`` defaults to its ``task``)."""
    if not isinstance(t, dict):
        raise ConfigError(
            f'tasks[{i}] must be an object like {{"task": "denoise"}}, got {_shown(t)}'
        )
    unknown = sorted(set(t) - set(_TASK_KEYS))
    if unknown:
        raise ConfigError(f"tasks[{i}] has unknown keys {unknown}; known: {list(_TASK_KEYS)}")
    if "task" not in t:
        raise ConfigError(f"tasks[{i}] needs a 'task' (e.g. \"denoise\"), got {_shown(t)}")
    return TaskSpec(
        name=t.get("name", t["task"]),
        task=t["task"],
        params=t.get("params", {}),
        methods=t.get("methods"),
    )


def spec_from_dict(d: object) -> BenchSpec:
    """The BenchSpec of a parsed JSON spec (its lists become tuples; a string where a list is
    wanted is refused, not read as a list of letters)."""
    if not isinstance(d, dict):
        raise ConfigError(f"a benchmark spec must be a JSON object, got {_shown(d)}")
    known = set(BenchSpec.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"unknown spec keys {sorted(unknown, key=str)}; known: {sorted(known)}")
    fields = dict(d)
    if isinstance(d.get("tasks"), list):
        fields["tasks"] = [_task_from(i, t) for i, t in enumerate(d["tasks"])]
    return BenchSpec(**fields)


def load_spec(path: str | Path) -> BenchSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"benchmark spec {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text: {e.reason} at byte {e.start}") from None
    except OSError as e:
        raise ConfigError(f"cannot read benchmark spec {path}: {e.strerror}") from None
    try:
        return spec_from_dict(json.loads(text))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path} nests lists and objects too deeply") from None


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
    # a latent search's mean steps per start, "+ N" the mean adaptation / ILO steps it chose
    steps: str = ""


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
    dataset = get_dataset(spec.data, spec.split, **spec.data_options)
    last = spec.first_image + spec.n_images
    if last > len(dataset):
        raise ConfigError(
            f"first_image + n_images must be <= {len(dataset)}, the size of the {spec.split} "
            f"split of {spec.data!r}, got {spec.first_image} + {spec.n_images}"
        )
    x = stack_images(dataset, range(spec.first_image, last))  # (B, C, S, S)
    if x.shape[1:] != model.image_shape:
        raise ConfigError(
            f"spec data are {tuple(x.shape[1:])} images but the model makes {model.image_shape}"
        )
    pairs = [
        (t.name, name) for t in spec.tasks for name in resolve_methods(spec, t.task, t.methods)
    ]
    # every degradation and method first: a bad option fails before any pair runs or file is made
    physics_of = {t.name: task_physics(t.task, model, t.params, seed=spec.seed) for t in spec.tasks}
    methods_of = {}  # (task name, method) -> the method, built
    for t in spec.tasks:
        for name in resolve_methods(spec, t.task, t.methods):
            extra = solve_options(spec, t.name, name)  # snapshots for a convergence curve
            options = spec.method_options.get(name, {}) | extra
            methods_of[t.name, name] = method = METHODS.build(name, model=model, **options)
            if hasattr(method, "check_physics"):
                method.check_physics(physics_of[t.name])
    for task, name in pairs:  # names checked again where they become paths
        _output_path(Path(out), task, name)
    out = ensure_folder(out)
    done, kept, kept_tasks = _split_stored(spec, *_stored_run(spec, model, out))
    if overwrite:
        done = {}
    results = {pair: done[pair] for pair in pairs if pair in done}  # (task, method) -> row
    write_results(kept + list(results.values()), out)  # before the records: stale rows never match
    record = _spec_record(spec)
    write_json(path_inside(out, "spec.json"), record | {"tasks": kept_tasks + record["tasks"]})
    write_json(path_inside(out, MODEL_RECORD), _record(model.info))
    indices = range(spec.first_image, last)
    noise_seeds = image_seeds(spec.seed, indices, NOISE_STREAM)
    start_seeds = image_seeds(spec.seed, indices, LATENT_STREAM)
    measured = {}  # task name -> (physics, y), for the analyses
    per_image = {}  # (task name, method) -> (PSNR, MSE) of each image (B,) x 2, for paired.md
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
                extra = solve_options(spec, t.name, name)
                method = methods_of[t.name, name]
                t0 = time.perf_counter()
                seeded = isinstance(method, LatentSearch) or getattr(method, "seeded", False)
                seeds = {"seeds": start_seeds} if seeded else {}
                result = None
                if isinstance(method, LatentSearch):
                    result = method.solve(y, physics, **seeds)  # method(y, physics) is its .x
                    x_hat = result.x.detach()
                else:
                    x_hat = method(y, physics, **seeds).detach()
                seconds = time.perf_counter() - t0
                if extra:  # scored against the clean images after solving, for the plot only
                    save_curve(out, spec, t.name, name, result, x)
                save_tensors(_output_path(out, t.name, name), {"x_hat": _to_uint8(x_hat)})
                results[t.name, name] = _row(t, name, x_hat, x, y, physics, seconds, result)
                write_results(kept + [results[p] for p in pairs if p in results], out)
            stored = _to_uint8(x_hat).float() / MAX_8BIT  # as a later resumed run reads it
            per_image[t.name, name] = (psnr(stored, x), mse(stored, x))
            grid.append(x_hat[shown])
            labels.append(name)
        grid_path = path_inside(out, f"grid_{t.name}.png")
        if not all((t.name, name) in done for name in labels[2:]) or not grid_path.exists():
            save_grid(grid_path, grid, labels)
    with atomic_path(path_inside(out, "paired.md")) as tmp:
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


def all_finished(spec: BenchSpec, model: ModelBundle, out: str | Path) -> bool:
    """Whether ``out`` holds every (task, method) pair of ``spec``, finished with its settings."""
    pairs = sum(len(resolve_methods(spec, t.task, t.methods)) for t in spec.tasks)
    return len(finished_rows(spec, model, out)) == pairs


def _split_stored(
    spec: BenchSpec, rows: list[ResultRow], stored: dict
) -> tuple[dict[tuple[str, str], ResultRow], list[ResultRow], list]:
    """(finished rows of ``spec``'s tasks by (task, method), rows and task records of the tasks
    ``spec`` does not run, kept as they are: ``genc bench --tasks`` runs a subset). A row is
    finished when its task's degradation and its method's options are those of ``spec``: a method
    added to the spec, or one whose options changed, runs; the others are kept."""
    record = _spec_record(spec)
    current = {t["name"]: _task_key(t) for t in record["tasks"]}
    options = record["method_options"]
    tasks, stored_options = stored.get("tasks", {}), stored.get("method_options", {})
    done = {
        (r.task, r.method): r
        for r in rows
        if r.task in current
        and _task_key(tasks.get(r.task, {})) == current[r.task]
        and stored_options.get(r.method, {}) == options.get(r.method, {})
    }
    others = [t for name, t in tasks.items() if name not in current]
    return done, [r for r in rows if r.task not in current], others


def _stored_run(spec: BenchSpec, model: ModelBundle, out: Path) -> tuple[list[ResultRow], dict]:
    """(rows with their output files, {"tasks": task records by name, "method_options": ...})
    of the run in ``out`` when it used the same data, images and seed and the same model (tasks,
    methods and their options may differ: :func:`_split_stored` sorts the rows); else ([], {})."""
    if not (out / "spec.json").is_file() or not (out / MODEL_RECORD).is_file():
        return [], {}
    try:
        stored, model_record = read_json(out / "spec.json"), read_json(out / MODEL_RECORD)
    except CheckpointError:  # damaged or edited by hand: run it all again
        return [], {}

    def base(record: dict) -> dict:
        record = _without_analyses(record)
        return {k: v for k, v in record.items() if k not in ("tasks", "methods", "method_options")}

    if base(stored) != base(_spec_record(spec)) or model_record != _record(model.info):
        return [], {}
    if not (out / "results.csv").is_file():
        return [], {}
    types = typing.get_type_hints(ResultRow)
    try:
        with (out / "results.csv").open(newline="") as f:
            rows = [ResultRow(**{k: types[k](v) for k, v in r.items()}) for r in csv.DictReader(f)]
        tasks = {t["name"]: t for t in stored["tasks"]}
        options = dict(stored.get("method_options", {}))
    except (KeyError, TypeError, ValueError):  # edited by hand: run it all again
        return [], {}
    kept = [r for r in rows if _has_output(out, r.task, r.method)]
    return kept, {"tasks": tasks, "method_options": options}


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
    """``out/outputs/TASK/METHOD.safetensors``; ConfigError for a name that is not a safe file
    name or a path that resolves outside ``out``."""
    task, method = check_file_name("task", task), check_file_name("method", method)
    return path_inside(out, "outputs", task, f"{method}.safetensors")


def _has_output(out: Path, task: str, method: str) -> bool:
    """Whether the pair's output file exists; False for names no run writes (a hand-edited
    ``results.csv``)."""
    try:
        return _output_path(out, task, method).is_file()
    except ConfigError:
        return False


def _to_uint8(x: Tensor) -> Tensor:
    """Images in [0, 1] as 8-bit levels, as the grids show them."""
    return (x.clamp(0, 1) * MAX_8BIT).round().to(torch.uint8)


def _row(
    t: TaskSpec,
    method: str,
    x_hat: Tensor,
    x: Tensor,
    y: Tensor,
    physics,
    seconds: float,
    result: SearchResult | None = None,
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
        **_steps(result),
    )


def _steps(result: SearchResult | None) -> dict:
    """The effort a latent search spent: mean steps per start (+ mean refinement steps)."""
    if result is None:
        return {}
    text = f"{float(result.steps_run.float().mean()):.4g}"
    refined = result.adapt_steps if result.adapt_steps is not None else result.ilo_steps
    if refined is not None:
        text += f" + {sum(refined) / len(refined):.4g}"
    return {"steps": text}


def markdown_table(rows: list[ResultRow]) -> str:
    lines = [
        "| task | method | n | MSE | PSNR (dB) | SSIM | residual | seconds | steps |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.task} | {r.method} | {r.n} | {format_mean_std(r.mse, r.mse_std, 5)} | "
            f"{format_mean_std(r.psnr, r.psnr_std, 2)} | "
            f"{format_mean_std(r.ssim, r.ssim_std, 3)} | "
            f"{r.residual:.2e} | {r.seconds:.1f} | {r.steps} |"
        )
    return "\n".join(lines) + "\n"


def paired_table(per_image: dict[tuple[str, str], tuple[Tensor, Tensor]]) -> str:
    """Markdown: per task, the method of best mean PSNR against each other method, as paired
    differences over the same images (PSNR gain, and MSE of the other minus the best's) with
    their 95 % confidence intervals; "within noise" when an interval contains 0."""
    lines = [
        "| task | best | other | PSNR gain (dB), 95 % CI | MSE difference, 95 % CI | n |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    for task in dict.fromkeys(t for t, _ in per_image):
        methods = {m: v for (t, m), v in per_image.items() if t == task}
        best = max(methods, key=lambda m: methods[m][0].mean().item())
        for other, (psnrs, mses) in methods.items():
            if other == best or len(psnrs) < 2:
                continue
            gain = paired_difference(methods[best][0], psnrs)
            cost = paired_difference(mses, methods[best][1])
            lines.append(
                f"| {task} | {best} | {other} | {_interval(gain, 2)} | {_interval(cost, 5)} | "
                f"{gain['n']} |"
            )
    return "\n".join(lines) + "\n"


def _interval(d: dict, digits: int) -> str:
    """``mean [low, high]`` of a paired difference, "within noise" when it holds 0."""
    text = f"{d['mean']:.{digits}f} [{d['low']:.{digits}f}, {d['high']:.{digits}f}]"
    return text + (" within noise" if d["low"] <= 0 <= d["high"] else "")


def write_results(rows: list[ResultRow], out: Path) -> None:
    """``results.csv`` and ``results.md``, each written atomically."""
    with atomic_path(path_inside(out, "results.csv")) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(ResultRow.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    with atomic_path(path_inside(out, "results.md")) as tmp:
        tmp.write_text(markdown_table(rows))
