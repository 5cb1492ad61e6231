"""Restoring a folder of image files: everything ``genc restore`` does except parsing and printing.

An output folder holds, per input ``NAME.ext``:

- ``restored/NAME.png``; for latent-search methods ``latents/NAME.safetensors`` with ``z`` (d,)
  and ``objective`` () (one file per output, so that a resumed or sharded run writes each once),
  plus ``candidates_z`` (K, d) and ``candidates_objective`` (K,) with ``candidates``;
- with ``candidates=K``: ``candidates/NAME_k.png``, k = 0 (best) .. K-1, and ``candidates.png``;
- with a method's ``ensemble`` > 1: ``spread/NAME.png``, the members' per-pixel standard
  deviation times 4 (white: 0.25 or more), where the method is unsure;
- ``metrics.csv``: one row per image: residual, discrepancy (ratio), flagged (0/1), objective,
  spread (the mean standard deviation, with an ensemble), and with ``simulate`` mse / psnr /
  ssim against the clean input (after solving);
- ``restore.json`` (the settings), ``fit.json`` (the flag threshold and its calibration),
  ``grid.png``.

Seeds are per image (from its file stem, :func:`~generative_encoder.apps.restore.image_seed`): the
simulated noise and the random starts of an image do not depend on its batch-mates or its shard.
Batches are cut from the whole sorted input list, and under ``torchrun`` (RANK, WORLD_SIZE set)
rank r restores batches r, r + W, r + 2W, ...: every batch is computed as in a one-process run,
so the images are identical to it, bit for bit. No process talks to another: rank r keeps its
rows in ``metrics.rank{r}.csv`` and, when done, merges every rank's rows into ``metrics.csv``
under a file lock. A rerun into the same folder with the same settings skips the finished images
(with any number of processes).
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from ..eval.candidates import Candidates, distinct_candidates
from ..eval.diagnostics import Calibration, calibrate
from ..eval.metrics import score
from ..io.checkpoints import ModelBundle, load_tensors, read_json, save_tensors, write_json
from ..io.files import atomic_path, ensure_folder
from ..io.images import list_images, read_image, resize_image, save_grid, write_image
from ..methods import METHODS
from ..methods.latent import LatentSearch
from ..physics import TASKS
from ..physics.seeds import LATENT_STREAM, NOISE_STREAM, image_seed
from ..registry import check_finite_fields
from .restore import IMAGE_TASKS, restore, simulate_each, task_physics, viewable

RESTORE_SETTINGS = "restore.json"  # in the output folder: what made its results
FIT_RECORD = "fit.json"
METRICS = "metrics.csv"
GRID_IMAGES = 16  # images shown in a restore grid


def shard_from_env(env: dict | None = None) -> tuple[int, int]:
    """(rank, world size) from torchrun's RANK and WORLD_SIZE; (0, 1) when they are not set."""
    env = os.environ if env is None else env
    try:
        rank, world = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
    except ValueError:
        raise ConfigError(
            f"RANK and WORLD_SIZE must be integers, got {env.get('RANK')!r}, "
            f"{env.get('WORLD_SIZE')!r}"
        ) from None
    if not 0 <= rank < world:
        raise ConfigError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
    return rank, world


def gather_inputs(
    paths: Sequence[str | os.PathLike],
    find: Callable[[Path], list[Path]] = list_images,
    written_as: str = "restored/{}.png",
    what: str = "images",
) -> list[Path]:
    """The files named or found in folders by ``find`` (images, recursively); two inputs whose
    outputs would share a name (``a/x.png``, ``b/x.jpg`` -> ``written_as`` of ``x``), names that
    are not valid text and anything but regular files (a FIFO would block the read forever) are
    refused."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += find(p)
        elif p.exists():
            files.append(p)
        else:
            raise ConfigError(f"input {p} does not exist")
    if not files:
        raise ConfigError(f"no {what} found in {', '.join(map(str, paths))}")
    files = list(dict.fromkeys(files))  # a file given twice is restored once
    for f in files:
        try:
            f.name.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(
                f"input {f!r} has a name that is not valid UTF-8; rename it"
            ) from None
        if not stat.S_ISREG(f.stat().st_mode):
            raise ConfigError(f"input {f} is not a regular file")
    by_stem: dict[str, Path] = {}
    for f in files:
        if f.stem in by_stem:
            raise ConfigError(
                f"inputs {by_stem[f.stem]} and {f} would both be written to "
                f"{written_as.format(f.stem)}; rename one"
            )
        by_stem[f.stem] = f
    return files


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r.get("image")]


def _rank_files(out: Path) -> list[Path]:
    return sorted(out.glob("metrics.rank*.csv"))


def finished_rows(out: Path, settings: dict, latent: bool) -> dict[str, dict]:
    """Metrics rows, by image name, of inputs that an earlier run into ``out`` with the same
    settings finished (``metrics.csv`` and any rank's ``metrics.rank*.csv``): a row is written
    after its restored image (and latent), so a row whose files exist is complete. An output
    folder that holds a different restore is refused."""
    if not (out / RESTORE_SETTINGS).exists():
        return {}
    before = read_json(out / RESTORE_SETTINGS)
    changed = [k for k in settings if before.get(k) != settings[k]]
    if changed:
        raise ConfigError(
            f"{out} holds the results of a restore with different "
            f"{', '.join(changed)}; pass --overwrite to replace them, or choose "
            "another -o"
        )

    def complete(name: str) -> bool:
        stem = Path(name).stem
        return (out / "restored" / f"{stem}.png").exists() and (
            not latent or (out / "latents" / f"{stem}.safetensors").exists()
        )

    rows = {}
    for path in [out / METRICS] + _rank_files(out):
        rows |= {r["image"]: r for r in _read_rows(path) if complete(r["image"])}
    return rows


def write_metrics(path: Path, rows: dict[str, dict], order: Sequence[Path]) -> None:
    """metrics.csv (atomically): one row per image, in input order, then rows of earlier inputs."""
    first = [f.name for f in order if f.name in rows]
    names = first + sorted(set(rows) - set(first))
    fields = list(dict.fromkeys(k for r in rows.values() for k in r))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows[name] for name in names)


def merge_metrics(
    out: Path, order: Sequence[Path], rows: dict[str, dict] | None = None
) -> dict[str, dict]:
    """Merge every rank's ``metrics.rank*.csv`` (or the given ``rows``) into ``metrics.csv``
    (the new rows win), under an exclusive lock on ``out/.metrics.lock`` so that ranks, or runs,
    finishing together do not lose rows; returns the merged rows by image name."""
    with open(out / ".metrics.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = {r["image"]: r for r in _read_rows(out / METRICS)}
        if rows is None:
            for path in _rank_files(out):
                merged |= {r["image"]: r for r in _read_rows(path)}
        else:
            merged |= rows
        write_metrics(out / METRICS, merged, order)
        return merged


def check_apart(inputs: Sequence[str | os.PathLike], files: Sequence[Path], output) -> None:
    """Refuse an output folder that is, or is inside, an input folder (its outputs would be read
    as inputs next time, and a ``grid.png`` input overwritten), or that holds an input."""
    out = Path(output).resolve()
    for p in map(Path, inputs):
        src = p.resolve()
        if src.is_dir() and (out == src or src in out.parents):
            raise ConfigError(
                f"-o {output} is inside the input folder {p}: its outputs would "
                "be read as inputs; choose another -o"
            )
    for f in files:
        if out in f.resolve().parents:
            raise ConfigError(f"input {f} is inside the output folder {output}; choose another -o")


def load_init_latents(path: str | os.PathLike, files: Sequence[Path], latent_dim: int) -> Tensor:
    """Saved z* (B, d) for ``files``: ``PATH/NAME.safetensors`` or ``PATH/latents/NAME...``
    (an earlier output folder), each holding ``z`` (d,)."""
    folder = Path(path)
    if (folder / "latents").is_dir():
        folder = folder / "latents"
    if not folder.is_dir():
        raise ConfigError(f"--init-latents {path} is not a folder of NAME.safetensors latents")
    missing = [f.name for f in files if not (folder / f"{f.stem}.safetensors").is_file()]
    if missing:
        raise ConfigError(
            f"no saved latent in {folder} for {len(missing)} input(s), e.g. "
            f"{missing[0]} (expected {Path(missing[0]).stem}.safetensors)"
        )
    zs = []
    for f in files:
        tensors = load_tensors(folder / f"{f.stem}.safetensors")
        z = tensors.get("z")
        if z is None or z.shape != (latent_dim,):
            raise ConfigError(
                f"{folder / f.stem}.safetensors must hold z of shape "
                f"({latent_dim},), got {None if z is None else tuple(z.shape)}"
            )
        zs.append(z.float())
    return torch.stack(zs)


@dataclass
class RestoreRequest:
    """What to restore and how; ``model_name`` is how the model was named (for the record)."""

    inputs: Sequence[str | os.PathLike]
    output: str | os.PathLike
    model: ModelBundle
    model_name: str
    task: str
    params: dict = field(default_factory=dict)
    method: str = "ge"
    options: dict = field(default_factory=dict)
    mask: Tensor | None = None
    mask_file: str | None = None
    simulate: bool = False
    seed: int = 0
    batch_size: int = 64
    overwrite: bool = False
    candidates: int = 0
    min_distance: float | None = None
    init_latents: str | None = None
    rank: int = 0
    world: int = 1

    def __post_init__(self):
        check_finite_fields(self)
        if self.min_distance is not None and not self.min_distance >= 0:
            raise ConfigError(f"--min-distance must be >= 0, got {self.min_distance}")


@dataclass
class RestoreSummary:
    """restored: images restored by this call; skipped: finished earlier; shard: this rank's
    images; flagged / rows: flagged images among the finished rows of this shard; resized:
    inputs center-cropped and resized to ``side``; scores: mean of mse/psnr/ssim (simulate);
    calibration: the flag threshold (None when nothing was solved and no fit.json exists)."""

    out: Path
    restored: int
    skipped: int
    shard: int
    total: int
    flagged: int
    rows: int
    resized: int
    side: int
    scores: dict[str, tuple[float, float]]
    tau: float | None


class FolderRestore:
    """Plan (checks first, so a bad input fails before any solving) and run a folder restore."""

    def __init__(self, request: RestoreRequest):
        r = self.request = request
        if r.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {r.batch_size}")
        if r.candidates < 0:
            raise ConfigError(f"--candidates must be >= 0, got {r.candidates}")
        model = r.model
        TASKS.get(r.task)  # an unknown task fails here, with the list of known ones
        if not r.simulate and r.task not in IMAGE_TASKS:
            raise ConfigError(
                f"task {r.task!r} measures vectors, not images: use --simulate to "
                f"measure clean images (image tasks: {', '.join(IMAGE_TASKS)})"
            )
        self.physics = task_physics(r.task, model, r.params, seed=r.seed, mask=r.mask)
        # options and the networks the method needs are checked now, before any image is solved
        self.method = METHODS.build(r.method, model=model, **r.options)
        self.latent = isinstance(self.method, LatentSearch)
        method = self.method
        if (r.candidates or r.init_latents) and not self.latent:
            raise ConfigError(
                f"--candidates and --init-latents need a latent-search method "
                f"(ge, csgm), not {r.method!r}"
            )
        if self.latent and r.candidates > method.config.restarts:
            raise ConfigError(
                f"--candidates {r.candidates} needs at least as many restarts: "
                f"add --method-opt restarts={r.candidates} (or more)"
            )
        self.files = gather_inputs(r.inputs)
        check_apart(r.inputs, self.files, r.output)
        if r.init_latents:  # every input needs its latent: checked now
            load_init_latents(r.init_latents, self.files, model.generator.latent_dim)
        self.out = Path(r.output)  # made once every input has been read
        self.settings = json.loads(
            json.dumps(
                {
                    "model": r.model_name,
                    "task": r.task,
                    "params": r.params,
                    "method": r.method,
                    "options": r.options,
                    "mask_file": r.mask_file,
                    "simulate": r.simulate,
                    "seed": r.seed,
                    "batch_size": r.batch_size,
                    "candidates": r.candidates,
                    "min_distance": r.min_distance,
                    "init_latents": r.init_latents,
                }
            )
        )
        self.rows = {} if r.overwrite else finished_rows(self.out, self.settings, self.latent)
        batches = [
            (first, self.files[first : first + r.batch_size])
            for first in range(0, len(self.files), r.batch_size)
        ]
        self.shard = [b for i, b in enumerate(batches) if i % r.world == r.rank]
        self.todo = [b for b in self.shard if not all(f.name in self.rows for f in b[1])]
        for _, batch in self.todo:  # a bad file fails now, before any folder is made
            for f in batch:
                read_image(f, channels=model.image_shape[0])
        ensure_folder(self.out)
        self.spread = getattr(method, "ensemble", 1) > 1
        subfolders = (
            ["restored"]
            + ["latents"] * self.latent
            + ["candidates"] * (r.candidates > 0)
            + ["spread"] * self.spread
        )
        for sub in subfolders:  # a read-only subfolder fails now, not after a batch is solved
            ensure_folder(self.out / sub)
        with torch.no_grad():
            self.observed = self.physics.A(torch.zeros(1, *model.image_shape)).shape[-1]
        self.side = model.image_shape[1] if r.simulate else self.observed
        self.n_shard = sum(len(b) for _, b in self.shard)
        self.skipped = self.n_shard - sum(len(b) for _, b in self.todo)

    @property
    def sharded(self) -> bool:
        return self.request.world > 1

    def calibration(self) -> Calibration:
        """The flag threshold of this run (the same in every rank and rerun: seeded)."""
        return calibrate(
            lambda y, seeds: restore(y, self.physics, self.method, seeds=seeds).x,
            self.physics,
            self.request.model.generator,
            batch_size=self.request.batch_size,
        )

    def run(self, on_batch: Callable[[int], None] | None = None) -> RestoreSummary:
        """Restore this shard's unfinished batches; ``on_batch(n)`` after each (n images)."""
        r, out = self.request, self.out
        write_json(out / RESTORE_SETTINGS, self.settings)
        tau = None
        if self.todo:
            cal = self.calibration()
            tau = cal.tau
            write_json(
                out / FIT_RECORD,
                {"tau": cal.tau, "chi2_bound": cal.chi2, "calibration_ratios": cal.ratios.tolist()},
            )
        elif (out / FIT_RECORD).is_file():
            tau = read_json(out / FIT_RECORD).get("tau")
        metrics = out / (f"metrics.rank{r.rank}.csv" if self.sharded else METRICS)
        mine = {f.name for _, b in self.shard for f in b}
        shown, cand_shown, resized = [], [], 0
        for first, batch in self.todo:
            new_rows, pictures, cand_pictures, n_resized = self._batch(batch, tau)
            self.rows |= new_rows
            rows = {k: v for k, v in self.rows.items() if k in mine} if self.sharded else self.rows
            # after the images: a row = done; rows that another run into this folder wrote since
            # this one started are kept
            if self.sharded or r.overwrite:
                write_metrics(metrics, rows, self.files)
            else:
                merge_metrics(self.out, self.files, rows)
            shown += pictures[: GRID_IMAGES - len(shown)]
            cand_shown += cand_pictures[: GRID_IMAGES - len(cand_shown)]
            resized += n_resized
            if on_batch is not None:
                on_batch(len(batch))
        if self.sharded:
            self.rows = merge_metrics(out, self.files)
        if r.rank == 0 and shown:
            labels = (["clean"] if r.simulate else []) + ["degraded", "restored"]
            labels += ["spread x4"] * self.spread
            save_grid(out / "grid.png", [torch.stack(c) for c in zip(*shown)], labels)
        if r.rank == 0 and cand_shown:
            labels = ["degraded"] + [f"candidate {k}" for k in range(r.candidates)]
            save_grid(out / "candidates.png", [torch.stack(c) for c in zip(*cand_shown)], labels)
        done = [self.rows[n] for n in mine if n in self.rows]
        scores = {}
        if r.simulate and done:
            for key in ("mse", "psnr", "ssim"):
                values = torch.tensor([float(row[key]) for row in done])
                scores[key] = (values.mean().item(), values.std(unbiased=False).item())
        return RestoreSummary(
            out=out,
            restored=self.n_shard - self.skipped,
            skipped=self.skipped,
            shard=self.n_shard,
            total=len(self.files),
            flagged=sum(int(row.get("flagged") or 0) for row in done),
            rows=len(done),
            resized=resized,
            side=self.side,
            scores=scores,
            tau=tau,
        )

    def _batch(self, files: Sequence[Path], tau: float | None):
        """Restore one batch and write its files. Returns (metrics rows by image name, the
        (clean,) degraded, restored pictures of each, the candidate pictures, resized count)."""
        r, out, model, physics = self.request, self.out, self.request.model, self.physics
        images = [read_image(f, channels=model.image_shape[0]) for f in files]
        resized = sum(im.shape[1:] != (self.side, self.side) for im in images)
        x = torch.stack([resize_image(im, self.side) for im in images])  # (B, C, side, side)
        clean, y = None, x
        if r.simulate:
            clean = x
            y = simulate_each(physics, x, [image_seed(r.seed, f.stem, NOISE_STREAM) for f in files])
        seeds = [image_seed(r.seed, f.stem, LATENT_STREAM) for f in files]
        init = (
            load_init_latents(r.init_latents, files, model.generator.latent_dim)
            if r.init_latents
            else None
        )
        result = restore(
            y,
            physics,
            self.method,
            seeds=seeds if self.latent or getattr(self.method, "seeded", False) else None,
            init=init,
            tau=tau,
        )
        cands = None
        if r.candidates:
            cands = distinct_candidates(
                result.search.restart_z,
                result.search.restart_objective,
                r.candidates,
                r.min_distance,
            )
            with torch.no_grad():
                cand_x = model.generator(cands.z.flatten(0, 1)).view(
                    len(files), r.candidates, *model.image_shape
                )  # (B, K, C, H, W)
        scores = score(result.x, clean) if clean is not None else None
        spread = None  # the members' standard deviation (B, C, H, W), and its picture at 4x
        if self.spread:
            spread = result.search.members.std(1, unbiased=False)
            spread_shown = (spread * 4).clamp(0, 1)
        rows = {}
        for i, f in enumerate(files):
            write_image(out / "restored" / f"{f.stem}.png", result.x[i])
            row = {
                "image": f.name,
                "residual": result.residual[i].item(),
                "discrepancy": result.discrepancy[i].item(),
            }
            if spread is not None:
                write_image(out / "spread" / f"{f.stem}.png", spread_shown[i])
                row["spread"] = spread[i].mean().item()
            if result.flagged is not None:
                row["flagged"] = int(result.flagged[i])
            if result.z is not None:
                tensors = {"z": result.z[i], "objective": result.objective[i]}
                if cands is not None:
                    found = int(cands.count[i])
                    tensors |= {
                        "candidates_z": cands.z[i, :found],
                        "candidates_objective": cands.objective[i, :found],
                    }
                    for k in range(found):
                        write_image(out / "candidates" / f"{f.stem}_{k}.png", cand_x[i, k])
                    row["candidate_objectives"] = ";".join(
                        f"{v:.6g}" for v in cands.objective[i, :found].tolist()
                    )
                save_tensors(out / "latents" / f"{f.stem}.safetensors", tensors)
                row["objective"] = result.objective[i].item()
            if scores is not None:
                row |= {k: v[i].item() for k, v in scores.items()}
            rows[f.name] = row
        picture = viewable(y, physics, result.x)
        shown = [
            ([] if clean is None else [clean[i]])
            + [picture[i], result.x[i]]
            + ([] if spread is None else [spread_shown[i]])
            for i in range(len(files))
        ]
        cand_shown = [] if cands is None else _candidate_pictures(picture, cand_x, cands)
        return rows, shown, cand_shown, resized


def _candidate_pictures(picture: Tensor, cand_x: Tensor, cands: Candidates) -> list[list[Tensor]]:
    """Per image: [degraded, candidate 0, ..., K-1], a missing candidate shown black."""
    found = (cands.index >= 0).to(cand_x.dtype)[..., None, None, None]  # (B, K, 1, 1, 1)
    cand_x = cand_x * found
    return [[picture[i]] + list(cand_x[i]) for i in range(len(picture))]
