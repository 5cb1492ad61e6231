"""Analyses that a benchmark spec can ask for after its methods ran: domain FID, convergence
curves, latent-space pictures and attribute preservation. Each writes PNG plots and Markdown / CSV
tables into the bench folder; what they compute is cached in ``outputs/_analysis/`` so that a
repeated run redraws without solving again.

Spec keys (see :mod:`generative_encoder.apps.bench`)::

    "analyses": ["fid", "convergence", "latent_map", "attributes", "porous"],
    "analysis_options": {
        "classifier": {"dir": "runs/classifier", "steps": 1500, "seed": 0, "n_train": null,
                       "attribute_file": null, "attribute": null, "rotation": false},
        "fid": {"feature": "classifier", "inception_weights": null, "reference_split": "train",
                "n_reference": 2000, "n_samples": null, "seed": 0},
        "convergence": {"methods": ["ge", "csgm"], "every": 10, "tasks": null},
        "latent_map": {"n_images": null, "n_fake": null, "method_options": null, "neighbours": 5,
                       "queries": 4, "pair": [0, 1], "interpolation_steps": 8, "seed": 0},
        "attributes": {"methods": ["ge", "csgm"], "tasks": null, "target": "label",
                       "positives_only": false},
        "porous": {"r_max": 16}}

- ``classifier`` (shared by ``fid`` and ``attributes``): the domain classifier, read from
  ``dir`` when that folder holds one trained with these settings (for example another bench
  folder's ``outputs/_analysis/classifier``; read only), else trained into
  ``outputs/_analysis/classifier`` of this bench folder, trained ``steps`` Adam
  steps on the training split's labels: mnist5k's digits, or, for an image folder, the binary
  ``attribute`` of a ``list_attr_celeba.txt``-format ``attribute_file`` (``n_train`` caps the
  training images); ``rotation: true`` trains it instead to tell the four 90-degree rotations
  of the training images apart (self-supervised: for data without labels, e.g. faces, it still
  gives a domain feature network for FID; it predicts no attribute).
- ``fid``: domain FID (``feature: "classifier"``, the classifier's hidden layer) or Inception FID
  (``feature: "inception"`` with ``inception_weights``, a ``.safetensors`` file on disk) of the
  clean bench images, of ``n_samples`` generator samples (default: as many as bench images) and of
  every method's restorations, each against ``n_reference`` images of ``reference_split``.
  Writes ``fid.md`` (the journal's Table 2 layout: MSE, SSIM +- std, FID), ``fid.csv``,
  ``fid.png``.
- ``convergence``: the journal's Figure 9, log10 mean MSE to the clean images against the
  iteration, from G(z) kept every ``every`` steps of each latent-search method's solve (recorded
  during the bench's own solve when that pair runs; pairs finished earlier are solved again).
  Writes ``convergence.png``, ``convergence.csv``.
- ``latent_map``: GE recovers z* from the codes E(x) of the first ``n_images`` bench images (GE's
  bench options unless ``method_options``) and of ``n_fake`` generator samples; writes
  ``latent_pca.png`` (PCA of z* and of E(x), coloured by class), ``latent_neighbours.png`` (the
  ``neighbours`` nearest images in each space for ``queries`` images), ``latent_interpolation.png``
  (G along the line between the z* of the ``pair`` of images, beside the decoder along the line
  between their codes and the pixel blend), ``latent_map.md`` (error split real vs fake,
  neighbour class agreement, explained variance).
- ``attributes``: the journal's Table 4: whether the classifier puts each restoration in its
  clean image's class (``target: "label"``: the data set's label; ``"clean"``: the classifier's
  class of the clean image), as a 2 x 2 table of the two ``methods`` per task, and every method's
  kept fraction; ``positives_only`` keeps images that have a binary attribute (e.g. Eyeglasses).
  Writes ``attributes.md``, ``attributes.csv``, ``attributes.png``.
- ``porous``: for binary (segmented) images such as rock, each restoration's physical errors
  against its clean patch (:func:`generative_encoder.eval.porous.restoration_errors`:
  porosity, S2(r) up to ``r_max`` pixels, Euler characteristic) beside its MSE: on binary images
  MSE favours blur, which a pore-space user does not want. Writes ``porous.md``, ``porous.csv``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..data import NO_LABEL, get_dataset, stack_images
from ..errors import ConfigError
from ..eval.attributes import (
    LabelledImages,
    RotatedImages,
    attribute_labels,
    kept,
    markdown_2x2,
    predict,
    preservation_table,
    read_attribute_file,
)
from ..eval.curves import Curve, curve_from_result, plot_convergence, save_figure
from ..eval.fid import (
    CLASSIFIER_NAME,
    FEATURE_KINDS,
    FIDScorer,
    classifier_features,
    domain_classifier,
    inception_features,
)
from ..eval.latent_maps import (
    error_split,
    generator_samples,
    interpolate,
    nearest_neighbours,
    neighbour_agreement,
    pca,
    plot_latent_pca,
    recover_latents,
    save_neighbour_grid,
)
from ..eval.metrics import format_mean_std, summarize
from ..eval.porous import R_MAX, porosity, restoration_errors
from ..io.checkpoints import ModelBundle, load_metadata, load_tensors, save_tensors
from ..io.files import atomic_path
from ..io.images import save_grid
from ..methods import METHODS
from ..methods.latent import LatentSearch

ANALYSES = ("fid", "convergence", "latent_map", "attributes", "porous")
OPTIONS: dict[str, dict] = {
    "classifier": {
        "dir": None,
        "steps": 1500,
        "seed": 0,
        "n_train": None,
        "attribute_file": None,
        "attribute": None,
        "rotation": False,
    },
    "fid": {
        "feature": "classifier",
        "inception_weights": None,
        "reference_split": "train",
        "n_reference": 2000,
        "n_samples": None,
        "seed": 0,
    },
    "convergence": {"methods": ["ge", "csgm"], "every": 10, "tasks": None},
    "latent_map": {
        "n_images": None,
        "n_fake": None,
        "method_options": None,
        "neighbours": 5,
        "queries": 4,
        "pair": [0, 1],
        "interpolation_steps": 8,
        "seed": 0,
    },
    "attributes": {
        "methods": ["ge", "csgm"],
        "tasks": None,
        "target": "label",
        "positives_only": False,
    },
    "porous": {"r_max": R_MAX},
}
CACHE = Path("outputs") / "_analysis"
CURVE_FORMAT = 1


def check_analyses(analyses, options: dict) -> None:
    """Raise ConfigError for an unknown analysis or option name, or an impossible value."""
    unknown = sorted(set(analyses) - set(ANALYSES))
    if unknown:
        raise ConfigError(f"unknown analyses {unknown}; known: {list(ANALYSES)}")
    if not isinstance(options, dict):
        raise ConfigError(f"analysis_options must be an object, got {options!r}")
    for name, opts in options.items():
        if name not in OPTIONS:
            raise ConfigError(
                f"analysis_options has unknown entry {name!r}; known: {sorted(OPTIONS)}"
            )
        if not isinstance(opts, dict):
            raise ConfigError(f"analysis_options[{name!r}] must be an object, got {opts!r}")
        bad = sorted(set(opts) - set(OPTIONS[name]))
        if bad:
            raise ConfigError(
                f"analysis {name!r} has no option {bad}; options: {sorted(OPTIONS[name])}"
            )
    fid = resolved(options, "fid")
    if fid["feature"] not in FEATURE_KINDS:
        raise ConfigError(f"fid feature must be one of {FEATURE_KINDS}, got {fid['feature']!r}")
    if "fid" in analyses and fid["feature"] == "inception" and not fid["inception_weights"]:
        raise ConfigError(
            "fid with feature 'inception' needs inception_weights: the path of "
            "torchvision's inception_v3 weights as .safetensors (nothing is "
            "downloaded)"
        )
    if resolved(options, "convergence")["every"] < 1:
        raise ConfigError("convergence every must be >= 1")
    if resolved(options, "attributes")["target"] not in ("label", "clean"):
        raise ConfigError("attributes target must be 'label' or 'clean'")
    c = resolved(options, "classifier")
    if (c["attribute_file"] is None) != (c["attribute"] is None):
        raise ConfigError("classifier options attribute_file and attribute go together")


def resolved(options: dict, name: str) -> dict:
    """One analysis' options with its defaults filled in."""
    return OPTIONS[name] | (options.get(name) or {})


def _is_latent(method: str) -> bool:
    builder = METHODS.get(method)
    return isinstance(builder, type) and issubclass(builder, LatentSearch)


def _curve_pairs(spec, task: str) -> list[str]:
    if "convergence" not in spec.analyses:
        return []
    o = resolved(spec.analysis_options, "convergence")
    if o["tasks"] is not None and task not in o["tasks"]:
        return []
    return [m for m in o["methods"] if m in spec.methods and _is_latent(m)]


def solve_options(spec, task: str, method: str) -> dict:
    """Extra method options for one bench pair: ``snapshot_every`` when the convergence analysis
    wants its curve (the snapshots change nothing in the search)."""
    if method in _curve_pairs(spec, task):
        return {"snapshot_every": resolved(spec.analysis_options, "convergence")["every"]}
    return {}


def _curve_path(out: Path, task: str, method: str) -> Path:
    return out / CACHE / "convergence" / task / f"{method}.safetensors"


def _curve_record(spec, method: str, n: int) -> str:
    return json.dumps(
        {
            "format": CURVE_FORMAT,
            "n": n,
            "seed": spec.seed,
            "options": spec.method_options.get(method, {}),
            "every": resolved(spec.analysis_options, "convergence")["every"],
        },
        sort_keys=True,
        default=str,
    )


def save_curve(out: Path, spec, task: str, method: str, result, x: Tensor) -> Curve:
    """Score a bench solve's snapshots against the clean images (after solving) and cache it."""
    curve = curve_from_result(result, x)
    save_tensors(
        _curve_path(out, task, method),
        {"steps": torch.tensor(curve.steps), "mse": curve.mse.float()},
        {"record": _curve_record(spec, method, len(x))},
    )
    return curve


def _load_curve(out: Path, spec, task: str, method: str, n: int) -> Curve | None:
    path = _curve_path(out, task, method)
    if not path.is_file() or load_metadata(path).get("record") != _curve_record(spec, method, n):
        return None
    t = load_tensors(path)
    return Curve(steps=t["steps"].tolist(), mse=t["mse"])


@dataclass
class BenchRun:
    """What a finished bench run hands to the analyses. ``measured[task] = (physics, y)``;
    ``seeds``: the latent methods' per-image start seeds; ``restored(task, method)`` loads that
    pair's restorations; ``rows`` are its ResultRows."""

    spec: object
    model: ModelBundle
    out: Path
    x: Tensor
    dataset: object
    indices: range
    measured: dict
    seeds: list
    rows: list
    restored: Callable[[str, str], Tensor]
    cache: dict = field(default_factory=dict)

    def classifier(self):
        if "classifier" not in self.cache:
            o = resolved(self.spec.analysis_options, "classifier")
            folder = self.out / CACHE / "classifier"
            if o["dir"] is not None and (Path(o["dir"]) / f"{CLASSIFIER_NAME}.json").is_file():
                folder = Path(o["dir"])  # read only: a classifier is trained into ``out`` alone
            self.cache["classifier"] = domain_classifier(
                self._training_set(o), folder, steps=o["steps"], seed=o["seed"]
            )
        return self.cache["classifier"]

    def _training_set(self, o: dict):
        spec = self.spec
        train = get_dataset(spec.data, "train", **spec.data_options)
        if o["attribute_file"] is not None:
            table = read_attribute_file(o["attribute_file"])
            labels = attribute_labels(train, table, o["attribute"])
            train = LabelledImages(train, labels, o["attribute"])
        elif len(train) and train[0][1] == NO_LABEL and not o["rotation"]:
            raise ConfigError(
                f"data set {spec.data!r} has no labels: give the classifier an "
                "attribute_file and attribute, set rotation (self-supervised), "
                "or use fid feature 'inception'"
            )
        if o["n_train"] is not None:
            n = min(int(o["n_train"]), len(train))
            labels = torch.tensor([train[i][1] for i in range(n)])
            train = LabelledImages(
                torch.utils.data.Subset(train, range(n)), labels, f"first{n}", name=_name(train)
            )
        return RotatedImages(train) if o["rotation"] else train

    def labels(self) -> Tensor | None:
        """(B,) labels of the bench images (data set labels or attribute), or None."""
        if "labels" not in self.cache:
            o = resolved(self.spec.analysis_options, "classifier")
            if o["attribute_file"] is not None:
                table = read_attribute_file(o["attribute_file"])
                all_labels = attribute_labels(self.dataset, table, o["attribute"])
                labels = all_labels[list(self.indices)]
            else:
                labels = torch.tensor([self.dataset[i][1] for i in self.indices])
                labels = None if (labels == NO_LABEL).any() else labels
            self.cache["labels"] = labels
        return self.cache["labels"]

    def label_name(self) -> str:
        attribute = resolved(self.spec.analysis_options, "classifier")["attribute"]
        return attribute or "class"


def _name(dataset) -> str:
    return getattr(dataset, "name", type(dataset).__name__)


def run_analyses(run: BenchRun, on_progress: Callable[[str], None] | None = None) -> list[Path]:
    """Run the spec's analyses in order; return the files written."""
    written = []
    for name in run.spec.analyses:
        if on_progress is not None:
            on_progress(f"analysis: {name}")
        written += {
            "fid": run_fid,
            "convergence": run_convergence,
            "latent_map": run_latent_map,
            "attributes": run_attributes,
            "porous": run_porous,
        }[name](run)
    return written


# ---------------------------------------------------------------------------------------- FID


def _fid_features(run: BenchRun):
    o = resolved(run.spec.analysis_options, "fid")
    if o["feature"] == "inception":
        return inception_features(o["inception_weights"]), "Inception FID"
    return classifier_features(run.classifier()), "domain FID"


def run_fid(run: BenchRun) -> list[Path]:
    spec, o = run.spec, resolved(run.spec.analysis_options, "fid")
    features, label = _fid_features(run)
    reference_set = get_dataset(spec.data, o["reference_split"], **spec.data_options)
    n_ref = min(int(o["n_reference"]), len(reference_set))
    reference = stack_images(reference_set, range(n_ref))
    scorer = FIDScorer(features, reference)
    n_samples = o["n_samples"] or len(run.x)
    _, samples = generator_samples(run.model, n_samples, seed=o["seed"])
    rows = [
        {
            "task": "-",
            "method": "clean images",
            "n": len(run.x),
            "mse": "",
            "ssim": "",
            "ssim_std": "",
            "fid": scorer.score(run.x),
        },
        {
            "task": "-",
            "method": "generator samples",
            "n": n_samples,
            "mse": "",
            "ssim": "",
            "ssim_std": "",
            "fid": scorer.score(samples.cpu()),
        },
    ]
    for r in run.rows:
        rows.append(
            {
                "task": r.task,
                "method": r.method,
                "n": r.n,
                "mse": r.mse,
                "ssim": r.ssim,
                "ssim_std": r.ssim_std,
                "fid": scorer.score(run.restored(r.task, r.method)),
            }
        )
    out = run.out
    _write_csv(out / "fid.csv", rows)
    lines = [
        f"{label} against {n_ref} {spec.data} {o['reference_split']} images "
        f"({features.num_features}-d features{_feature_note(o)}); lower is better. "
        "Domain FIDs compare only with domain FIDs of the same classifier.",
        "",
        f"| task | method | n | MSE | SSIM | {label} |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        mse = f"{r['mse']:.5f}" if r["mse"] != "" else ""
        ssim = format_mean_std(r["ssim"], r["ssim_std"], 3) if r["ssim"] != "" else ""
        lines.append(
            f"| {r['task']} | {r['method']} | {r['n']} | {mse} | {ssim} | {r['fid']:.2f} |"
        )
    _write_text(out / "fid.md", "\n".join(lines) + "\n")
    _plot_fid(rows, out / "fid.png", label)
    return [out / "fid.csv", out / "fid.md", out / "fid.png"]


def _feature_note(o: dict) -> str:
    return (
        ", torchvision Inception v3"
        if o["feature"] == "inception"
        else ", the domain classifier's hidden layer"
    )


def _plot_fid(rows: list[dict], path: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows if r["task"] != "-"))
    methods = list(dict.fromkeys(r["method"] for r in rows if r["task"] != "-"))
    fid = {(r["task"], r["method"]): r["fid"] for r in rows}
    fig, ax = plt.subplots(figsize=(_width(len(tasks), len(methods)), 3.6))
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        xs = [i + j * width for i, t in enumerate(tasks) if (t, m) in fid]
        ys = [fid[t, m] for t in tasks if (t, m) in fid]
        ax.bar(xs, ys, width, label=m)
    for name, style in (("generator samples", "--"), ("clean images", ":")):
        ax.axhline(fid["-", name], color="k", linestyle=style, linewidth=1, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(tasks))], tasks, rotation=20)
    ax.set_ylabel(label)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


# -------------------------------------------------------------------------------- convergence


def run_convergence(run: BenchRun) -> list[Path]:
    spec = run.spec
    curves: dict[str, dict[str, Curve]] = {}
    for t in spec.tasks:
        for method in _curve_pairs(spec, t.name):
            curve = _load_curve(run.out, spec, t.name, method, len(run.x))
            if curve is None:  # the pair was finished by an earlier run: solve it again
                physics, y = run.measured[t.name]
                solver = METHODS.build(
                    method,
                    model=run.model,
                    **(spec.method_options.get(method, {}) | solve_options(spec, t.name, method)),
                )
                curve = save_curve(
                    run.out, spec, t.name, method, solver.solve(y, physics, seeds=run.seeds), run.x
                )
            curves.setdefault(t.name, {})[method] = curve
    wanted = resolved(spec.analysis_options, "convergence")["tasks"]
    if not curves and wanted is not None and not set(wanted) & {t.name for t in spec.tasks}:
        return []  # a run of other tasks of the spec (genc bench --tasks): nothing to draw
    if not curves:
        raise ConfigError(
            "the convergence analysis found no latent-search method (ge, csgm) "
            "among the spec's methods"
        )
    rows = [
        {"task": task, "method": m, "step": s, "mean_mse": mean, "log10_mean_mse": log}
        for task, by in curves.items()
        for m, c in by.items()
        for s, mean, log in zip(c.steps, c.mean().tolist(), c.log10_mean().tolist())
    ]
    _write_csv(run.out / "convergence.csv", rows)
    plot_convergence(
        curves,
        run.out / "convergence.png",
        title=f"log10 mean MSE to the clean images, {len(run.x)} images",
    )
    return [run.out / "convergence.csv", run.out / "convergence.png"]


# --------------------------------------------------------------------------------- latent map


def run_latent_map(run: BenchRun) -> list[Path]:
    spec, model, out = run.spec, run.model, run.out
    o = resolved(spec.analysis_options, "latent_map")
    model.require("generator", "encoder")
    n = min(o["n_images"] or len(run.x), len(run.x))
    n_fake = o["n_fake"] or n
    options = (
        spec.method_options.get("ge", {}) if o["method_options"] is None else o["method_options"]
    )
    x = run.x[:n]
    z0, fake = generator_samples(model, n_fake, seed=o["seed"])
    path = out / CACHE / "latent_map.safetensors"
    record = json.dumps(
        {"n": n, "n_fake": n_fake, "options": options, "seed": o["seed"], "model": model.info},
        sort_keys=True,
        default=str,
    )
    if path.is_file() and load_metadata(path).get("record") == record:
        t = load_tensors(path)
        z_real, z_fake = t["z_real"], t["z_fake"]
    else:
        z_real = recover_latents(model, x, **options).z.detach().cpu()
        z_fake = recover_latents(model, fake, **options).z.detach().cpu()
        save_tensors(path, {"z_real": z_real, "z_fake": z_fake}, {"record": record})
    g = model.generator.eval()
    with torch.no_grad():
        x_real_hat, x_fake_hat = g(z_real).cpu(), g(z_fake).cpu()
        codes = model.encoder.eval()(x).cpu()
    split = error_split(x, x_real_hat, fake.cpu(), x_fake_hat, z0.cpu(), z_fake)
    labels = run.labels()
    labels_n = labels[:n] if labels is not None else torch.zeros(n, dtype=torch.long)
    spaces = {
        "GE latent z*": pca(z_real),
        "encoder code E(x)": pca(codes),
        "pixels x": pca(x.flatten(1)),
    }
    plot_latent_pca(spaces, labels_n, out / "latent_pca.png", run.label_name())
    k = min(o["neighbours"], n - 1)
    neighbours = {
        "z*": nearest_neighbours(z_real, k),
        "E(x)": nearest_neighbours(codes, k),
        "pixels": nearest_neighbours(x.flatten(1), k),
    }
    queries = list(range(min(o["queries"], n)))
    save_neighbour_grid(out / "latent_neighbours.png", x, neighbours, queries)
    a, b = o["pair"]
    if not (0 <= a < n and 0 <= b < n):
        raise ConfigError(f"latent_map pair {o['pair']} is outside the {n} images")
    steps = o["interpolation_steps"]
    t = torch.linspace(0, 1, steps)[:, None, None, None]
    rows = [interpolate(g, z_real[a], z_real[b], steps).cpu()]
    labels_rows = ["G(lerp z*)"]
    if model.decoder is not None:
        code_t = torch.linspace(0, 1, steps)[:, None]
        with torch.no_grad():
            rows.append(model.decoder.eval()((1 - code_t) * codes[a] + code_t * codes[b]).cpu())
        labels_rows.append("dec(lerp E(x))")
    rows.append((1 - t) * x[a] + t * x[b])
    labels_rows.append("pixel blend")
    ends = torch.zeros_like(rows[0])
    ends[0], ends[-1] = x[a], x[b]
    save_grid(out / "latent_interpolation.png", [ends] + rows, ["x_a ... x_b"] + labels_rows)
    summary = split.summary()
    agreement = (
        {name: neighbour_agreement(idx, labels_n) for name, idx in neighbours.items()}
        if labels is not None
        else {}
    )
    lines = [
        f"GE latents recovered from the codes E(x) of {n} real {spec.data} images and of "
        f"{n_fake} generator samples G(z0) (fake), method options {json.dumps(options)}.",
        "",
        "| set | n | MSE of G(z*) (mean ± std) |",
        "| --- | ---: | ---: |",
        f"| real | {n} | {_mean_std(split.real_mse, 5)} |",
        f"| fake | {n_fake} | {_mean_std(split.fake_mse, 5)} |",
        "",
        f"- solver error (MSE on fakes, which G can make): {summary['solver_error']:.5f}",
        f"- representation error (real minus fake): {summary['representation_error']:.5f} "
        f"({100 * summary['representation_share']:.0f} % of the error on real images)",
        f"- on fakes, ||z* - z0|| = {_mean_std(split.fake_latent_distance, 3)} (||z0|| = "
        f"{z0.norm(dim=1).mean():.3f} on average)",
        "",
    ]
    lines += [
        "| space | dims | variance in PC1 + PC2 | neighbours sharing the "
        f"{run.label_name()} (k = {k}) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for (name, p), key in zip(spaces.items(), neighbours):
        share = f"{agreement[key]:.3f}" if agreement else "-"
        dims = {"z*": z_real.shape[1], "E(x)": codes.shape[1], "pixels": x[0].numel()}[key]
        lines.append(f"| {name} | {dims} | {p.explained[:2].sum():.3f} | {share} |")
    _write_text(out / "latent_map.md", "\n".join(lines) + "\n")
    _write_csv(
        out / "latent_map.csv",
        [{"set": "real", "index": i, "mse": v} for i, v in enumerate(split.real_mse.tolist())]
        + [{"set": "fake", "index": i, "mse": v} for i, v in enumerate(split.fake_mse.tolist())],
    )
    return [
        out / f
        for f in (
            "latent_pca.png",
            "latent_neighbours.png",
            "latent_interpolation.png",
            "latent_map.md",
            "latent_map.csv",
        )
    ]


# --------------------------------------------------------------------------------- attributes


def run_attributes(run: BenchRun) -> list[Path]:
    spec, o = run.spec, resolved(run.spec.analysis_options, "attributes")
    if resolved(spec.analysis_options, "classifier")["rotation"]:
        raise ConfigError(
            "attributes needs a classifier of labels or of an attribute; "
            "the rotation classifier predicts no class of the image"
        )
    labels = run.labels()
    classifier = run.classifier()
    if o["target"] == "clean":
        targets = predict(classifier, run.x)
    elif labels is None:
        raise ConfigError(
            f"data set {spec.data!r} has no labels: give the classifier an "
            "attribute_file and attribute, or use target 'clean'"
        )
    else:
        targets = labels
    keep = torch.ones(len(run.x), dtype=torch.bool)
    if o["positives_only"]:
        if labels is None or labels.max() > 1:
            raise ConfigError("positives_only needs binary labels (an attribute file)")
        keep = labels == 1
    if not keep.any():
        raise ConfigError("no bench image has the attribute: positives_only leaves none")
    a, b = o["methods"]
    tasks = [t.name for t in spec.tasks if o["tasks"] is None or t.name in o["tasks"]]
    ran = {(r.task, r.method) for r in run.rows}
    what = "kept" if run.label_name() == "class" else f"kept {run.label_name()}"
    clean_kept = kept(classifier, run.x[keep], targets[keep])
    lines = [
        f"Does the classifier put each restoration in its {run.label_name()} "
        f"({'the data set label' if o['target'] == 'label' else 'the clean image'}'s)? "
        f"{int(keep.sum())} images; the classifier keeps {int(clean_kept.sum())} of the "
        "clean images themselves.",
        "",
    ]
    csv_rows, fractions = [], {}
    for task in tasks:
        verdicts = {}
        for r in run.rows:
            if r.task == task:
                verdicts[r.method] = kept(
                    classifier, run.restored(task, r.method)[keep], targets[keep]
                )
                v = verdicts[r.method]
                fractions[task, r.method] = v.double().mean().item()
                csv_rows.append(
                    {
                        "task": task,
                        "method": r.method,
                        "n": len(v),
                        "kept": int(v.sum()),
                        "lost": int((~v).sum()),
                        "kept_fraction": fractions[task, r.method],
                    }
                )
        if (task, a) in ran and (task, b) in ran:
            table = preservation_table(verdicts[a], verdicts[b])
            lines += [f"### {task}", "", markdown_2x2(table, a, b, what)]
    lines += [
        "Kept fraction per method:",
        "",
        "| task | " + " | ".join(dict.fromkeys(m for _, m in fractions)) + " |",
    ]
    methods = list(dict.fromkeys(m for _, m in fractions))
    lines.append("| --- |" + " ---: |" * len(methods))
    for task in tasks:
        lines.append(
            f"| {task} | "
            + " | ".join(
                f"{fractions[task, m]:.3f}" if (task, m) in fractions else "" for m in methods
            )
            + " |"
        )
    _write_text(run.out / "attributes.md", "\n".join(lines) + "\n")
    _write_csv(run.out / "attributes.csv", csv_rows)
    _plot_fractions(
        fractions,
        tasks,
        methods,
        clean_kept.double().mean().item(),
        run.out / "attributes.png",
        what,
    )
    return [run.out / "attributes.md", run.out / "attributes.csv", run.out / "attributes.png"]


def _plot_fractions(
    fractions: dict, tasks: list[str], methods: list[str], clean: float, path: Path, what: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(_width(len(tasks), len(methods)), 3.6))
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        xs = [i + j * width for i, t in enumerate(tasks) if (t, m) in fractions]
        ax.bar(xs, [fractions[t, m] for t in tasks if (t, m) in fractions], width, label=m)
    ax.axhline(clean, color="k", linestyle=":", linewidth=1, label="clean images")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(tasks))], tasks, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"fraction {what}")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------- porous media


def run_porous(run: BenchRun) -> list[Path]:
    """Physical errors of each restoration against its clean (binary) image."""
    r_max = resolved(run.spec.analysis_options, "porous")["r_max"]
    if not isinstance(r_max, int) or isinstance(r_max, bool) or r_max < 1:
        raise ConfigError(f"porous: r_max must be an integer >= 1, got {r_max!r}")
    if not bool(((run.x == 0) | (run.x == 1)).all()):
        raise ConfigError("porous needs binary (segmented) images, such as the rock data")
    clean = porosity(run.x)
    lines = [
        f"Physical errors per restoration against its clean patch ({len(run.x)} patches, "
        f"clean porosity {_mean_std(clean, 4)}): |porosity difference|, mean |S2(r) "
        f"difference| over r = 0..{r_max}, |Euler characteristic difference| per 1000 pixels. "
        "Lower is better; mean +- std over patches.",
        "",
        "| task | method | MSE | porosity error | S2 error | Euler error |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    rows = []
    for r in run.rows:
        errors = restoration_errors(run.restored(r.task, r.method), run.x, r_max)
        lines.append(
            f"| {r.task} | {r.method} | {format_mean_std(r.mse, r.mse_std, 5)} | "
            f"{_mean_std(errors['porosity_err'], 4)} | {_mean_std(errors['s2_err'], 4)} | "
            f"{_mean_std(errors['euler_err'], 3)} |"
        )
        rows.append(
            {"task": r.task, "method": r.method, "mse": r.mse}
            | {k: float(v.mean()) for k, v in errors.items()}
        )
    _write_text(run.out / "porous.md", "\n".join(lines) + "\n")
    _write_csv(run.out / "porous.csv", rows)
    return [run.out / "porous.md", run.out / "porous.csv"]


# ------------------------------------------------------------------------------------- files


def _width(n_tasks: int, n_methods: int) -> float:
    """Figure width (inches) of a grouped bar chart with its legend on the right."""
    return max(5.0, 2.6 + 0.45 * n_tasks * max(n_methods, 1))


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _mean_std(values: Tensor, digits: int) -> str:
    """``"mean ± std"`` of per-image values (B,)."""
    s = summarize(values.flatten())
    return format_mean_std(s["mean"], s["std"], digits)
