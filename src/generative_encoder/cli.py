"""The ``genc`` command line: argument parsing, progress bars and printing live here only.

    genc train gan --data mnist5k --out runs/mnist --steps 4000
    genc train encoder --data mnist5k --model runs/mnist --m 128
    genc restore --model runs/mnist --task inpaint --method ge --simulate digits/*.png -o out/
    genc demo
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from .errors import ConfigError, GencError

GRID_IMAGES = 16  # images shown in a restore grid


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true, null, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(pairs: Sequence[str] | None, flag: str) -> dict[str, Any]:
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE, got {pair!r}")
        options[key.replace("-", "_")] = parse_value(value)
    return options


def progress_callback(total: int, desc: str, keys: Sequence[str]):
    """The ``on_step(step, logs)`` callback that advances a tqdm bar; the bar appears at the first
    step, so that an error in the setup before it is the only line printed."""
    bar = None

    def on_step(step: int, logs: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=step, desc=desc, dynamic_ncols=True, mininterval=0.5)
        bar.n = step
        bar.set_postfix({k: f"{logs[k]:.4g}" for k in keys if k in logs}, refresh=False)
        bar.update(0)
        if step >= total:
            bar.close()

    return on_step


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="mnist5k",
                   help="dataset name: mnist5k (embedded), folder, rock, synthetic_rock")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="dataset option, repeatable: root=DIR, size=64, channels=3, path=VOL.tif")


def load_splits(args) -> tuple:
    from .data import get_dataset

    options = parse_options(args.data_opt, "--data-opt")
    return (get_dataset(args.data, "train", **options), get_dataset(args.data, "test", **options))


def cmd_train_gan(args) -> None:
    from .training import GANConfig, train_gan

    train_set, _ = load_splits(args)
    config = GANConfig(arch=args.arch, steps=args.steps, batch_size=args.batch_size,
                       latent_dim=args.latent_dim, latent_dist=args.latent_dist, width=args.width,
                       loss=args.loss, seed=args.seed, device=args.device,
                       checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
                       r1_gamma=args.r1)
    on_step = progress_callback(config.steps, "train gan", ["loss_d", "loss_g", "d_real"])
    logs = train_gan(train_set, args.out, config, resume=args.resume, on_step=on_step)
    print(f"generator and discriminator after {logs.get('step', config.steps)} steps "
          f"in {args.out} (samples in {Path(args.out) / 'samples'})")


def cmd_train_encoder(args) -> None:
    from .training import EncoderConfig, train_encoder

    train_set, test_set = load_splits(args)
    config = EncoderConfig(code_dim=args.m, depth=args.depth, width=args.width,
                           decoder_depth=args.decoder_depth, decoder_width=args.decoder_width,
                           real_fraction=args.real_fraction, steps=args.steps,
                           batch_size=args.batch_size, seed=args.seed, device=args.device)
    on_step = progress_callback(config.steps, "train encoder",
                                ["loss", "mse_real_test", "mse_fake"])
    logs = train_encoder(train_set, test_set, args.model, config, resume=args.resume,
                         on_step=on_step)
    print(f"encoder m={config.code_dim}: reconstruction MSE {logs['mse_real_test']:.5f} on real "
          f"test images, {logs['mse_fake']:.5f} on generator samples")


def resolve_model(name_or_dir: str):
    """A model folder, or the name of a shipped model (``mnist5k``)."""
    from .checkpoints import load_model
    from .demo import SHIPPED_MODELS, shipped_model

    if name_or_dir in SHIPPED_MODELS and not Path(name_or_dir).exists():
        return shipped_model(name_or_dir)
    return load_model(name_or_dir)


def print_table(rows) -> None:
    from .bench import markdown_table

    print(markdown_table(rows), end="")


def run_bench_cli(spec, model, out: str, overwrite: bool = False) -> None:
    from .bench import finished_rows, resolve_methods, run_bench

    total = sum(len(resolve_methods(spec, t.task)) for t in spec.tasks)
    done = 0 if overwrite else len(finished_rows(spec, model, out))
    if done:
        print(f"resuming: {done} of {total} (task, method) pairs are already in "
              f"{out}/results.csv with this spec and model (--overwrite redoes them)")
    bars = []  # made at the first pair: an error before it is the only line printed

    def on_progress(label: str) -> None:
        if not bars:
            bars.append(tqdm(total=total, initial=done, desc="bench", dynamic_ncols=True))
        else:
            bars[0].update(1)  # the pair before this one is finished
        bars[0].set_description(label)

    rows = run_bench(spec, model, out, on_progress, overwrite=overwrite)
    if bars:
        bars[0].update(1)
        bars[0].close()
    print_table(rows)
    print(f"wrote {out}/results.md, results.csv and grid_*.png")


def cmd_demo(args) -> None:
    import time

    from .demo import DEMO_SPEC, DEMO_STEPS, shipped_model

    print(f"genc demo: {DEMO_SPEC.n_images} held-out mnist5k digits, {len(DEMO_SPEC.tasks)} tasks; "
          f"GE and CSGM with {DEMO_STEPS} Adam steps x 2 restarts (the paper's 500 steps: "
          "genc bench experiments/mnist_tasks.json)")
    t0 = time.perf_counter()
    run_bench_cli(DEMO_SPEC, shipped_model(), args.out, overwrite=args.overwrite)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")


def cmd_bench(args) -> None:
    import dataclasses

    from .bench import load_spec

    spec = load_spec(args.config)
    if args.tasks:
        wanted = args.tasks.split(",")
        unknown = sorted(set(wanted) - {t.name for t in spec.tasks})
        if unknown:
            raise ConfigError(f"--tasks names {unknown} not in {args.config}; it has "
                              f"{', '.join(t.name for t in spec.tasks)}")
        spec = dataclasses.replace(spec, tasks=tuple(t for t in spec.tasks if t.name in wanted))
    run_bench_cli(spec, resolve_model(args.model), args.out, overwrite=args.overwrite)


def gather_inputs(paths: Sequence[str]) -> list[Path]:
    """The image files named or found (recursively) in folders; two inputs whose outputs would
    share a name (``a/x.png``, ``b/x.jpg`` -> ``restored/x.png``) are refused."""
    from .images import list_images

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += list_images(p)
        elif p.exists():
            files.append(p)
        else:
            raise ConfigError(f"input {p} does not exist")
    if not files:
        raise ConfigError(f"no images found in {', '.join(paths)}")
    files = list(dict.fromkeys(files))  # a file given twice is restored once
    by_stem: dict[str, Path] = {}
    for f in files:
        if f.stem in by_stem:
            raise ConfigError(f"inputs {by_stem[f.stem]} and {f} would both be written to "
                              f"restored/{f.stem}.png; rename one")
        by_stem[f.stem] = f
    return files


RESTORE_SETTINGS = "restore.json"  # in the output folder: what made its results


def finished_rows(out: Path, settings: dict, latent: bool) -> dict[str, dict]:
    """Metrics rows, by image name, of inputs that an earlier run into ``out`` with the same
    settings finished: a row is written after its restored image (and latent), so a row whose
    files exist is complete. An output folder that holds a different restore is refused."""
    import csv

    from .checkpoints import read_json

    if not (out / RESTORE_SETTINGS).exists():
        return {}
    before = read_json(out / RESTORE_SETTINGS)
    changed = [k for k in settings if before.get(k) != settings[k]]
    if changed:
        raise ConfigError(f"{out} holds the results of a restore with different "
                          f"{', '.join(changed)}; pass --overwrite to replace them, or choose "
                          "another -o")
    if not (out / "metrics.csv").exists():
        return {}
    with (out / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))

    def complete(name: str) -> bool:
        stem = Path(name).stem
        return (out / "restored" / f"{stem}.png").exists() and (
            not latent or (out / "latents" / f"{stem}.safetensors").exists())

    return {r["image"]: r for r in rows if r.get("image") and complete(r["image"])}


def write_metrics(path: Path, rows: dict[str, dict], order: Sequence[Path]) -> None:
    """metrics.csv (atomically): one row per image, in input order, then rows of earlier inputs."""
    import csv

    from .files import atomic_path

    first = [f.name for f in order if f.name in rows]
    names = first + sorted(set(rows) - set(first))
    fields = list(dict.fromkeys(k for r in rows.values() for k in r))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows[name] for name in names)


def restore_batch(files: Sequence[Path], first: int, physics, model, args, options: dict,
                  observed: int, out: Path) -> tuple[dict[str, dict], list, int]:
    """Restore the input files number ``first`` on (one batch), writing ``restored/*.png`` and,
    for latent methods, ``latents/*.safetensors``. Returns their metrics rows by image name, the
    (clean,) degraded and restored pictures of each for the grid, and how many were resized."""
    import torch

    from .checkpoints import save_tensors
    from .images import read_image, resize_image, write_image
    from .metrics import score
    from .restore import batch_seed, restore, simulate, viewable

    side = model.image_shape[1] if args.simulate else observed
    images = [read_image(f, channels=model.image_shape[0]) for f in files]
    resized = sum(im.shape[1:] != (side, side) for im in images)
    x = torch.stack([resize_image(im, side) for im in images])  # (B, C, side, side)
    clean, y = (x, simulate(physics, x, batch_seed(args.seed, first))) if args.simulate \
        else (None, x)
    result = restore(y, physics, args.method, model, **options)
    scores = score(result.x, clean) if clean is not None else None
    rows = {}
    for i, f in enumerate(files):
        write_image(out / "restored" / f"{f.stem}.png", result.x[i])
        row = {"image": f.name, "residual": result.residual[i].item()}
        if result.z is not None:
            save_tensors(out / "latents" / f"{f.stem}.safetensors",
                         {"z": result.z[i], "objective": result.objective[i]})
            row["objective"] = result.objective[i].item()
        if scores is not None:
            row |= {k: v[i].item() for k, v in scores.items()}
        rows[f.name] = row
    picture = viewable(y, physics, result.x)
    shown = [([] if clean is None else [clean[i]]) + [picture[i], result.x[i]]
             for i in range(len(files))]
    return rows, shown, resized


def cmd_restore(args) -> None:
    import torch

    from .checkpoints import write_json
    from .files import ensure_folder
    from .images import read_image, save_grid
    from .methods import METHODS
    from .methods.latent import LatentSearch
    from .physics import TASKS
    from .restore import IMAGE_TASKS, task_physics

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    model = resolve_model(args.model)
    channels, size = model.image_shape[0], model.image_shape[1]
    params = parse_options(args.param, "--param")
    options = parse_options(args.method_opt, "--method-opt")
    TASKS.get(args.task)  # an unknown task fails here, with the list of known ones
    if not args.simulate and args.task not in IMAGE_TASKS:
        raise ConfigError(f"task {args.task!r} measures vectors, not images: use --simulate to "
                          f"measure clean images (image tasks: {', '.join(IMAGE_TASKS)})")
    mask = None
    if args.mask_file:
        mask = (read_image(args.mask_file, channels=1)[0] > 0.5).float()
    physics = task_physics(args.task, model, params, seed=args.seed, mask=mask)
    # options and the networks the method needs are checked now, before any image is solved
    latent = isinstance(METHODS.build(args.method, model=model, **options), LatentSearch)
    files = gather_inputs(args.inputs)
    out = ensure_folder(args.output)
    settings = json.loads(json.dumps({
        "model": str(Path(args.model).resolve()) if Path(args.model).exists() else args.model,
        "task": args.task, "params": params, "method": args.method, "options": options,
        "mask_file": args.mask_file and str(Path(args.mask_file).resolve()),
        "simulate": args.simulate, "seed": args.seed, "batch_size": args.batch_size}))
    rows = {} if args.overwrite else finished_rows(out, settings, latent)
    batches = [(first, files[first:first + args.batch_size])
               for first in range(0, len(files), args.batch_size)]
    todo = [(first, batch) for first, batch in batches if not all(f.name in rows for f in batch)]
    for _, batch in todo:  # a bad file fails now, not after hours of solving
        for f in batch:
            read_image(f, channels=channels)
    write_json(out / RESTORE_SETTINGS, settings)
    with torch.no_grad():
        observed = physics.A(torch.zeros(1, *model.image_shape)).shape[-1]

    skipped = len(files) - sum(len(batch) for _, batch in todo)
    if skipped:
        print(f"skipped {skipped} image(s) already restored in {out} by an earlier run "
              "(--overwrite redoes them)")
    shown, resized = [], 0
    with tqdm(total=len(files), initial=skipped, desc=f"restore {args.task} with {args.method}",
              dynamic_ncols=True) as bar:
        for first, batch in todo:
            new_rows, pictures, n_resized = restore_batch(batch, first, physics, model, args,
                                                          options, observed, out)
            rows |= new_rows
            write_metrics(out / "metrics.csv", rows, files)  # after the images: a row = done
            shown += pictures[:GRID_IMAGES - len(shown)]
            resized += n_resized
            bar.update(len(batch))

    if shown:
        labels = (["clean"] if args.simulate else []) + ["degraded", "restored"]
        save_grid(out / "grid.png", [torch.stack(c) for c in zip(*shown)], labels)
    if resized:
        side = size if args.simulate else observed
        print(f"note: {resized} image(s) were not {side} x {side} and were center-cropped and "
              "resized")
    if args.simulate:
        for key in ("mse", "psnr", "ssim"):
            values = torch.tensor([float(rows[f.name][key]) for f in files])
            print(f"{key}: {values.mean():.4f} +- {values.std(unbiased=False):.4f}")
    print(f"restored {len(files) - skipped} image(s) into {out}/restored (grid.png, metrics.csv)")


def cmd_list(args) -> None:
    from .data import list_datasets
    from .methods import METHODS
    from .physics import TASKS

    print("datasets:", ", ".join(list_datasets()))
    print("tasks:   ", ", ".join(TASKS.names()))
    print("methods: ", ", ".join(METHODS.names()))


class Parser(argparse.ArgumentParser):
    """argparse's parser, with a usage error printed as one line like every other input error."""

    def error(self, message: str):
        self.exit(2, f"genc: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="genc", description="Generative Encoder: image restoration with GAN priors.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="pre-training: a GAN, then an encoder")
    train_sub = train.add_subparsers(dest="what", required=True)

    gan = train_sub.add_parser("gan", help="train a GAN generator (GE pre-training step 1)")
    add_data_args(gan)
    gan.add_argument("--out", required=True, help="run / model folder")
    gan.add_argument("--arch", default="dcgan")
    gan.add_argument("--steps", type=int, default=4000)
    gan.add_argument("--batch-size", type=int, default=64)
    gan.add_argument("--latent-dim", type=int, default=64)
    gan.add_argument("--latent-dist", default="normal", choices=["normal", "uniform"])
    gan.add_argument("--width", type=int, default=64)
    gan.add_argument("--loss", default="nonsaturating", choices=["nonsaturating", "hinge"])
    gan.add_argument("--r1", type=float, default=0.0,
                     help="R1 penalty weight gamma on real images (helps small data sets)")
    gan.add_argument("--checkpoint-every", type=int, default=500)
    gan.add_argument("--sample-every", type=int, default=500)
    gan.add_argument("--seed", type=int, default=0)
    gan.add_argument("--device", default="cpu")
    gan.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    gan.set_defaults(func=cmd_train_gan)

    enc = train_sub.add_parser("encoder",
                               help="train the autoencoder on real + generated images (step 2)")
    add_data_args(enc)
    enc.add_argument("--model", required=True, help="model folder holding the generator")
    enc.add_argument("--m", type=int, default=128, help="code size (measurements)")
    enc.add_argument("--depth", type=int, default=None, help="encoder blocks d")
    enc.add_argument("--width", type=int, default=16, help="encoder filters f")
    enc.add_argument("--decoder-depth", type=int, default=None)
    enc.add_argument("--decoder-width", type=int, default=None)
    enc.add_argument("--real-fraction", type=float, default=0.5)
    enc.add_argument("--steps", type=int, default=3000)
    enc.add_argument("--batch-size", type=int, default=64)
    enc.add_argument("--seed", type=int, default=0)
    enc.add_argument("--device", default="cpu")
    enc.add_argument("--resume", action="store_true")
    enc.set_defaults(func=cmd_train_encoder)

    restore = sub.add_parser("restore", help="restore degraded images (or --simulate a task)")
    restore.add_argument("inputs", nargs="+", help="image files or folders")
    restore.add_argument("-o", "--output", required=True, help="output folder")
    restore.add_argument("--model", default="mnist5k", help="model folder or shipped model name")
    restore.add_argument("--task", required=True,
                         help="denoise, deblur, superres, inpaint, cs, encoder_cs")
    restore.add_argument("--method", default="ge", help="ge, csgm, autoencoder, "
                         "bm3d, tv, wiener, bicubic, biharmonic, ... (genc list)")
    restore.add_argument("--param", action="append", metavar="KEY=VALUE",
                         help="task parameter, repeatable: sigma=0.4, factor=4, mask=block, m=64")
    restore.add_argument("--method-opt", action="append", metavar="KEY=VALUE",
                         help="method option, repeatable: steps=500, restarts=2, lr=0.1")
    restore.add_argument("--mask-file", help="inpainting: a mask image, white = known pixels")
    restore.add_argument("--simulate", action="store_true",
                         help="inputs are clean: degrade them first, then restore and score")
    restore.add_argument("--batch-size", type=int, default=64)
    restore.add_argument("--seed", type=int, default=0)
    restore.add_argument("--overwrite", action="store_true",
                         help="redo every input; by default inputs that an earlier run into the "
                         "same folder with the same settings finished are skipped")
    restore.set_defaults(func=cmd_restore)

    demo = sub.add_parser("demo", help="every task on 16 held-out digits with the shipped model")
    demo.add_argument("--out", default="genc-demo")
    demo.add_argument("--overwrite", action="store_true", help="redo results already in --out")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="run a benchmark spec (JSON) of methods x tasks")
    bench.add_argument("config")
    bench.add_argument("--model", default="mnist5k")
    bench.add_argument("--out", required=True)
    bench.add_argument("--tasks", help="comma-separated task names of the spec to run (default all)")
    bench.add_argument("--overwrite", action="store_true",
                       help="redo every pair; by default pairs already in OUT/results.csv with "
                       "the same spec and model are kept")
    bench.set_defaults(func=cmd_bench)

    lst = sub.add_parser("list", help="list datasets, tasks and methods")
    lst.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except GencError as e:
        print(f"genc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genc: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
