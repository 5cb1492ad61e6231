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


class LazyBar:
    """A tqdm bar made at its first update (an error before any work is the only line printed);
    ``update(n)`` is the ``on_batch`` callback of folder runs."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "img"):
        self.desc, self.total, self.unit, self.bar = desc, total, unit, None

    def update(self, n: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, dynamic_ncols=True)
        self.bar.update(n)

    def __enter__(self) -> "LazyBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default="mnist5k",
        help="dataset name: mnist5k (embedded), folder, rock, synthetic_rock",
    )
    p.add_argument(
        "--data-opt",
        action="append",
        metavar="KEY=VALUE",
        help="dataset option, repeatable: root=DIR, size=64, channels=3, path=VOL.tif",
    )


def comma_list(text: str) -> tuple[str, ...]:
    """The non-empty, stripped items of a comma-separated option."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def add_regressor_args(p: argparse.ArgumentParser, steps_flag: str) -> None:
    from .training.regressor import RegressorConfig

    default = RegressorConfig()
    p.add_argument(
        steps_flag,
        dest="regressor_steps",
        type=int,
        default=default.steps,
        help="Adam steps of amortized GE's latent regressor"
        + (" (0: do not train it)" if steps_flag != "--steps" else ""),
    )
    p.add_argument(
        "--regressor-real-steps",
        type=int,
        default=None,
        help="steps after those that add a batch of the real training images (--data), so "
        "that R fits real codes too (default: a quarter of the regressor's steps; 0: off)",
    )
    p.add_argument("--regressor-hidden", type=int, default=default.hidden)
    p.add_argument("--regressor-batch-size", type=int, default=default.batch_size)
    p.add_argument(
        "--regressor-degradations",
        default=",".join(default.degradations) or "none",
        help="comma list of denoise, deblur, superres, inpaint applied to the generator's "
        "samples before encoding, so that the amortized start fits degraded inputs; none: "
        "clean codes (default %(default)s)",
    )


def run_regressor(args, encoder: str, device: str, train_set=None) -> None:
    """Train the regressor; its real phase takes ``train_set``, else --data's training split."""
    from .training.regressor import RegressorConfig, train_regressor

    steps = args.regressor_steps
    real_steps = args.regressor_real_steps
    if real_steps is None:
        real_steps = steps // 4
    listed = args.regressor_degradations.strip()
    config = RegressorConfig(
        steps=steps,
        hidden=args.regressor_hidden,
        batch_size=args.regressor_batch_size,
        device=device,
        degradations=() if listed == "none" else comma_list(listed),
        real_steps=real_steps,
    )
    if real_steps and train_set is None:
        train_set = load_split(args, "train")
    on_step = progress_callback(
        steps + real_steps, f"train regressor ({encoder})", ["loss", "image_loss", "real_loss"]
    )
    logs = train_regressor(
        args.model,
        config,
        encoder,
        images=train_set if real_steps else None,
        overwrite=args.overwrite,
        on_step=on_step,
    )
    real = (
        f"; G(R(E(x))) is {logs['real_image_mse']:.5f} from real training images x"
        if real_steps
        else ""
    )
    print(
        f"latent regressor of the {encoder} encoder: G(R(E(G(z)))) is {logs['image_mse']:.5f} "
        f"from G(z) in MSE on held samples (the amortized start){real}"
    )


def cmd_train_regressor(args) -> None:
    run_regressor(args, args.encoder, args.device)


def load_split(args, split: str):
    """The ``split`` ("train" or "test") of --data with its --data-opt options."""
    from .data import get_dataset

    return get_dataset(args.data, split, **parse_options(args.data_opt, "--data-opt"))


def load_splits(args) -> tuple:
    return load_split(args, "train"), load_split(args, "test")


def cmd_train_gan(args) -> None:
    import os

    from .training import GANConfig, train_gan

    train_set, _ = load_splits(args)
    config = GANConfig(
        arch=args.arch,
        steps=args.steps,
        batch_size=args.batch_size,
        latent_dim=args.latent_dim,
        latent_dist=args.latent_dist,
        width=args.width,
        refine=args.refine,
        hidden=args.hidden,
        d_hidden=args.d_hidden,
        mbstd=args.mbstd,
        info_weight=args.info_weight,
        class_labels=args.class_labels,
        loss=args.loss,
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every,
        r1_gamma=args.r1,
        r1_every=args.r1_every,
        augment=args.augment,
        amp=args.amp,
        gamma=args.gamma,
        lambda_k=args.lambda_k,
        phase_steps=args.phase_steps,
    )
    on_step = progress_callback(
        config.steps,
        f"train gan ({config.arch})",
        ["loss_d", "loss_g", "d_real", "loss_info", "k", "m_global", "resolution"],
    )
    logs = train_gan(
        train_set, args.out, config, resume=args.resume, overwrite=args.overwrite, on_step=on_step
    )
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return
    print(
        f"generator and discriminator after {logs.get('step', config.steps)} steps "
        f"in {args.out} (samples in {Path(args.out) / 'samples'})"
    )


def cmd_train_encoder(args) -> None:
    import os

    from .training import EncoderConfig, train_encoder
    from .training.encoder import DEGRADATIONS

    if args.degradations is None:
        degradations = DEGRADATIONS if args.kind == "robust" else ()
    else:
        degradations = comma_list(args.degradations)
    train_set, test_set = load_splits(args)
    config = EncoderConfig(
        code_dim=args.m,
        depth=args.depth,
        width=args.width,
        decoder_depth=args.decoder_depth,
        decoder_width=args.decoder_width,
        real_fraction=args.real_fraction,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        kind=args.kind,
        kl_weight=args.kl_weight,
        adv_weight=args.adv_weight,
        degradations=degradations,
        code_weight=args.code_weight,
    )
    on_step = progress_callback(
        config.steps, f"train encoder ({config.kind})", ["loss", "mse_real_test", "mse_fake"]
    )
    logs = train_encoder(
        train_set,
        test_set,
        args.model,
        config,
        resume=args.resume,
        overwrite=args.overwrite,
        on_step=on_step,
    )
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return
    if "mse_real_test" not in logs:  # --resume of a run already at --steps: no step ran
        print(
            f"{config.kind} encoder in {args.model} already has {config.steps} steps; nothing "
            "to do (a larger --steps continues it)"
        )
    else:
        print(
            f"{config.kind} encoder m={config.code_dim}: reconstruction MSE "
            f"{logs['mse_real_test']:.5f} on real test images, "
            f"{logs['mse_fake']:.5f} on generator samples"
        )
    from .models.families import family

    present = (Path(args.model) / f"{family(config.kind).regressor}.safetensors").exists()
    if args.regressor_steps > 0 and (args.overwrite or not present):
        run_regressor(args, config.kind, args.device, train_set)


def print_table(rows) -> None:
    from .apps.bench import markdown_table

    print(markdown_table(rows), end="")


def run_bench_cli(spec, model, out: str, overwrite: bool = False) -> None:
    from .apps.bench import finished_rows, resolve_methods, run_bench

    total = sum(len(resolve_methods(spec, t.task, t.methods)) for t in spec.tasks) + len(
        spec.analyses
    )
    done = 0 if overwrite else len(finished_rows(spec, model, out))
    if done:
        print(
            f"resuming: {done} of {total} (task, method) pairs are already in "
            f"{out}/results.csv with these settings and model (--overwrite redoes them)"
        )
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
    print(f"wrote {out}/results.md, results.csv, paired.md and grid_*.png")


def cmd_demo(args) -> None:
    import time

    from .apps.demo import DEMO_SPEC, DEMO_STEPS
    from .io.zoo import shipped_model

    print(
        f"genc demo: {DEMO_SPEC.n_images} held-out mnist5k digits, {len(DEMO_SPEC.tasks)} tasks; "
        f"GE and CSGM with {DEMO_STEPS} Adam steps x 2 restarts (the paper's 500 steps: "
        "genc bench experiments/mnist_tasks.json)"
    )
    t0 = time.perf_counter()
    run_bench_cli(DEMO_SPEC, shipped_model(), args.out, overwrite=args.overwrite)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")


def cmd_bench(args) -> None:
    import dataclasses

    from .apps.bench import all_finished, load_spec
    from .io.zoo import resolve_model

    full = spec = load_spec(args.config)
    if args.tasks:
        wanted = args.tasks.split(",")
        unknown = sorted(set(wanted) - {t.name for t in spec.tasks})
        if unknown:
            raise ConfigError(
                f"--tasks names {unknown} not in {args.config}; it has "
                f"{', '.join(t.name for t in spec.tasks)}"
            )
        spec = dataclasses.replace(spec, tasks=tuple(t for t in spec.tasks if t.name in wanted))
    model = resolve_model(args.model)
    run_bench_cli(spec, model, args.out, overwrite=args.overwrite)
    if spec is not full and all_finished(full, model, args.out):
        # paired.md and the analyses of a run cover its own tasks: redo them for the whole spec
        print(f"every task of {args.config} is done: paired.md and the analyses cover them all")
        run_bench_cli(full, model, args.out)


def cmd_restore(args) -> None:
    from .apps.restore_folder import FolderRestore, RestoreRequest, shard_from_env
    from .io.images import read_image
    from .io.zoo import resolve_model

    model = resolve_model(args.model)
    mask = None
    if args.mask_file:
        mask = (read_image(args.mask_file, channels=1)[0] > 0.5).float()
    options = parse_options(args.method_opt, "--method-opt")
    if args.latent_weight is not None:
        options["latent_weight"] = parse_value(args.latent_weight)
    rank, world = shard_from_env()
    job = FolderRestore(
        RestoreRequest(
            inputs=args.inputs,
            output=args.output,
            model=model,
            model_name=str(Path(args.model).resolve()) if Path(args.model).exists() else args.model,
            task=args.task,
            params=parse_options(args.param, "--param"),
            method=args.method,
            options=options,
            mask=mask,
            mask_file=args.mask_file and str(Path(args.mask_file).resolve()),
            simulate=args.simulate,
            seed=args.seed,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
            candidates=args.candidates,
            min_distance=args.min_distance,
            init_latents=args.init_latents and str(Path(args.init_latents).resolve()),
            rank=rank,
            world=world,
        )
    )
    where = (
        f" (rank {rank} of {world}: {job.n_shard} of {len(job.files)} images)" if world > 1 else ""
    )
    if job.skipped:
        print(
            f"skipped {job.skipped} image(s) already restored in {job.out} by an earlier run "
            f"(--overwrite redoes them){where}"
        )
    with tqdm(
        total=job.n_shard,
        initial=job.skipped,
        dynamic_ncols=True,
        desc=f"restore {args.task} with {args.method}",
        disable=rank > 0,
    ) as bar:
        summary = job.run(on_batch=bar.update)
    if summary.resized:
        print(
            f"note: {summary.resized} image(s) were not {summary.side} x {summary.side} and "
            "were center-cropped and resized"
        )
    for key, (mean, std) in summary.scores.items():
        print(f"{key}: {mean:.4f} +- {std:.4f}")
    if summary.tau is not None:
        print(
            f"flagged {summary.flagged} of {summary.rows} image(s): discrepancy ratio > "
            f"{summary.tau:.3g} (fit.json; the 'flagged' column of metrics.csv)"
        )
    extra = " and candidates/" if args.candidates else ""
    print(
        f"restored {summary.restored} image(s) into {summary.out}/restored (grid.png, "
        f"metrics.csv, latents/{extra}){where}"
    )


def cmd_train_denoiser(args) -> None:
    from .training.denoiser import DenoiserConfig, train_denoiser

    train_set, test_set = load_splits(args)
    config = DenoiserConfig(
        width=args.width,
        blocks=args.blocks,
        sigma_min=args.sigma_min,
        sigma_max=args.sigma_max,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
    )
    on_step = progress_callback(config.steps, "train denoiser", ["loss", "psnr_test"])
    logs = train_denoiser(
        train_set,
        test_set,
        args.model,
        config,
        resume=args.resume,
        overwrite=args.overwrite,
        on_step=on_step,
    )
    if "psnr_test" not in logs:  # --resume of a run already at --steps: no step ran
        print(f"denoiser in {args.model} already has {config.steps} steps; nothing to do")
        return
    print(
        f"denoiser in {args.model}: {logs['psnr_test']:.2f} dB on held-out images at noise "
        f"0.1 (noisy: {logs['psnr_noisy']:.2f} dB); {logs['seconds']:.0f} s"
    )


def cmd_train_codec(args) -> None:
    from .io.checkpoints import load_model
    from .training.codec import fit_codec

    model = load_model(args.model)  # a folder: a shipped model is never written into
    train_set, _ = load_splits(args)
    with LazyBar("encode training images", len(train_set)) as bar:
        quantizer = fit_codec(model, train_set, args.encoder, kind=args.kind, on_batch=bar.update)
    print(
        f"{quantizer.kind} codec of the {args.encoder} encoder ({quantizer.code_dim} numbers, bits "
        f"{', '.join(map(str, quantizer.bits))}) fitted on {len(train_set)} images, in "
        f"{model.folder}"
    )


def cmd_evaluate_model(args) -> None:
    from .apps.evaluate import evaluate_model, markdown
    from .io.zoo import resolve_model

    model = resolve_model(args.model)
    train_set, test_set = load_splits(args)
    report = evaluate_model(
        model,
        train_set,
        test_set,
        args.output,
        n=args.n,
        n_fit=args.n_fit,
        steps=args.steps,
        restarts=args.restarts,
        fid=not args.no_fid,
        on_stage=lambda what: print(f"evaluate: {what}", flush=True),
    )
    print(markdown(report), end="")
    print(f"wrote {args.output}/evaluation.json, evaluation.md, samples.png")


def cmd_compress(args) -> None:
    from .apps.codec import Codec, compress_files
    from .io.zoo import resolve_model

    codec = Codec(resolve_model(args.model), args.encoder)
    with LazyBar(f"compress at {args.bits} bits") as bar:
        summary = compress_files(
            args.inputs,
            args.output,
            codec,
            args.bits,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
            on_batch=bar.update,
        )
    if summary.skipped:
        print(f"kept {summary.skipped} file(s) already in {args.output} (--overwrite redoes them)")
    if summary.resized:
        print(
            f"note: {summary.resized} image(s) were center-cropped and resized to the model's size"
        )
    if summary.written:
        c, h, w = codec.model.image_shape
        mean = summary.bytes / summary.written
        print(
            f"compressed {summary.written} image(s) into {args.output}: {mean:.1f} bytes each, "
            f"{8 * mean / (h * w):.3f} bits per pixel"
        )


def cmd_decompress(args) -> None:
    from .apps.codec import Codec, decompress_files
    from .io.zoo import resolve_model

    codec = Codec(resolve_model(args.model), args.encoder)
    options = parse_options(args.method_opt, "--method-opt")
    with LazyBar(f"decompress with {args.decoder}") as bar:
        summary = decompress_files(
            args.inputs,
            args.output,
            codec,
            args.decoder,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
            on_batch=bar.update,
            **options,
        )
    if summary.skipped:
        print(f"kept {summary.skipped} image(s) already in {args.output} (--overwrite redoes them)")
    print(f"decoded {summary.written} image(s) into {args.output}")


def cmd_list(args) -> None:
    from .data import list_datasets
    from .io.zoo import SHIPPED_MODELS, installed_models
    from .methods import METHODS
    from .physics import TASKS

    print("datasets:", ", ".join(list_datasets()))
    print("tasks:   ", ", ".join(TASKS.names()))
    print("methods: ", ", ".join(METHODS.names()))
    here = installed_models()
    missing = [name for name in SHIPPED_MODELS if name not in here]
    print(
        "models:  ",
        ", ".join(here) + (f" (not installed: {', '.join(missing)})" if missing else ""),
    )


class Parser(argparse.ArgumentParser):
    """argparse's parser, with a usage error printed as one line like every other input error."""

    def error(self, message: str):
        self.exit(2, f"genc: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="genc", description="Generative Encoder: image restoration with GAN priors."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="pre-training: a GAN, then an encoder")
    train_sub = train.add_subparsers(dest="what", required=True)

    gan = train_sub.add_parser("gan", help="train a GAN generator (GE pre-training step 1)")
    add_data_args(gan)
    gan.add_argument("--out", required=True, help="run / model folder")
    gan.add_argument(
        "--arch",
        default="dcgan",
        help="dcgan; began (autoencoder discriminator, equilibrium k_t; its "
        "encoder is GE0); pgan (progressive growing from 4x4)",
    )
    gan.add_argument("--steps", type=int, default=4000)
    gan.add_argument("--batch-size", type=int, default=64)
    gan.add_argument("--latent-dim", type=int, default=64)
    gan.add_argument(
        "--latent-dist",
        default="normal",
        help="normal (N(0, I)), uniform (U[-1, 1]) or normal+catK (InfoGAN: the "
        "last K coordinates a one-hot category; dcgan only)",
    )
    gan.add_argument(
        "--info-weight",
        type=float,
        default=1.0,
        help="InfoGAN: weight of the category loss (with --latent-dist normal+catK)",
    )
    gan.add_argument(
        "--class-labels",
        action="store_true",
        help="AC-GAN: the category of --latent-dist normal+catK is the data's class "
        "label (needs a labelled set, e.g. mnist5k with normal+cat10)",
    )
    gan.add_argument("--width", type=int, default=64)
    gan.add_argument(
        "--refine", type=int, default=0, help="extra stride-1 conv layers per resolution in G and D"
    )
    gan.add_argument(
        "--hidden",
        type=int,
        default=0,
        help="units of a fully connected layer in G after z (0 = none)",
    )
    gan.add_argument(
        "--d-hidden",
        type=int,
        default=0,
        help="units of a fully connected layer in D before its logit (0 = none)",
    )
    gan.add_argument(
        "--mbstd",
        action="store_true",
        help="minibatch standard-deviation channel in D (against mode collapse)",
    )
    gan.add_argument("--loss", default="nonsaturating", choices=["nonsaturating", "hinge"])
    gan.add_argument(
        "--r1",
        type=float,
        default=0.0,
        help="R1 penalty weight gamma on real images (helps small data sets)",
    )
    gan.add_argument(
        "--r1-every",
        type=int,
        default=1,
        help="lazy R1: apply the penalty every k-th step, weighted by k (StyleGAN2 uses 16; "
        "saves most of its cost)",
    )
    gan.add_argument(
        "--augment",
        default="",
        help="differentiable augmentation seen by D: comma-separated of "
        "translation, cutout, brightness (DiffAugment; helps small data sets)",
    )
    gan.add_argument(
        "--gamma",
        type=float,
        default=0.5,
        help="began: diversity ratio gamma = E L(G(z)) / E L(x) at equilibrium",
    )
    gan.add_argument(
        "--lambda-k",
        type=float,
        default=1e-3,
        help="began: learning rate of the equilibrium control k_t",
    )
    gan.add_argument(
        "--phase-steps",
        type=int,
        default=1000,
        help="pgan: steps of each fade-in and each stable phase per resolution",
    )
    gan.add_argument("--checkpoint-every", type=int, default=500)
    gan.add_argument("--sample-every", type=int, default=500)
    gan.add_argument("--seed", type=int, default=0)
    gan.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps")
    gan.add_argument("--amp", action="store_true", help="bfloat16 autocast (mixed precision)")
    gan.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    gan.add_argument(
        "--overwrite", action="store_true", help="train anew over a run already in --out"
    )
    gan.set_defaults(func=cmd_train_gan)

    enc = train_sub.add_parser(
        "encoder", help="train the autoencoder on real + generated images (step 2)"
    )
    add_data_args(enc)
    enc.add_argument("--model", required=True, help="model folder holding the generator")
    enc.add_argument(
        "--kind",
        default="ge1",
        help="encoder family: ge1 (encoder.*), vae (vae_encoder.*; E(x) = posterior "
        "mean), aegan (aegan_encoder.*: + adversarial loss on reconstructions), robust "
        "(robust_encoder.*: decodes the clean image from degraded ones, --degradations)",
    )
    enc.add_argument(
        "--degradations",
        default=None,
        help="robust: comma list of denoise, deblur, superres, inpaint drawn per image "
        "(default all four); refused with another --kind",
    )
    enc.add_argument(
        "--code-weight",
        type=float,
        default=0.0,
        help="robust: weight of ||E(degraded) - E(clean)||^2 beside the clean reconstruction",
    )
    enc.add_argument("--kl-weight", type=float, default=1.0, help="vae: weight of the KL term")
    enc.add_argument(
        "--adv-weight", type=float, default=0.01, help="aegan: weight of the adversarial loss"
    )
    enc.add_argument("--m", type=int, default=128, help="code size (measurements)")
    enc.add_argument("--depth", type=int, default=None, help="encoder blocks d")
    enc.add_argument("--width", type=int, default=16, help="encoder filters f")
    enc.add_argument("--decoder-depth", type=int, default=None)
    enc.add_argument("--decoder-width", type=int, default=None)
    enc.add_argument("--real-fraction", type=float, default=0.5)
    enc.add_argument("--steps", type=int, default=3000)
    enc.add_argument("--batch-size", type=int, default=64)
    enc.add_argument("--seed", type=int, default=0)
    enc.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps")
    enc.add_argument("--amp", action="store_true", help="bfloat16 autocast (mixed precision)")
    enc.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    enc.add_argument(
        "--overwrite", action="store_true", help="train anew over this family's encoder"
    )
    add_regressor_args(enc, "--regressor-steps")
    enc.set_defaults(func=cmd_train_encoder)

    reg = train_sub.add_parser(
        "regressor",
        help="train amortized GE's latent regressor R: code -> latent (genc train encoder runs it)",
    )
    reg.add_argument("--model", required=True, help="model folder holding generator and encoder")
    reg.add_argument(
        "--encoder", default="ge1", help="encoder family: ge1, vae, aegan, robust, ge0"
    )
    add_regressor_args(reg, "--steps")
    add_data_args(reg)
    reg.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps")
    reg.add_argument("--overwrite", action="store_true", help="train anew over a regressor")
    reg.set_defaults(func=cmd_train_regressor)

    den = train_sub.add_parser(
        "denoiser",
        help="train plug-and-play's denoiser (DRUNet, noise-level conditioned) on the real images",
    )
    add_data_args(den)
    den.add_argument(
        "--model", "--out", dest="model", required=True, help="model folder to add it to"
    )
    from .training.denoiser import DenoiserConfig

    den_default = DenoiserConfig()
    den.add_argument("--width", type=int, default=den_default.width, help="channels at full size")
    den.add_argument(
        "--blocks", type=int, default=den_default.blocks, help="residual blocks per scale"
    )
    den.add_argument("--sigma-min", type=float, default=den_default.sigma_min)
    den.add_argument(
        "--sigma-max",
        type=float,
        default=den_default.sigma_max,
        help="noise std range, [0, 1] scale",
    )
    den.add_argument("--steps", type=int, default=den_default.steps)
    den.add_argument("--batch-size", type=int, default=den_default.batch_size)
    den.add_argument("--lr", type=float, default=den_default.lr)
    den.add_argument("--seed", type=int, default=0)
    den.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps")
    den.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    den.add_argument("--overwrite", action="store_true", help="train anew over a denoiser")
    den.set_defaults(func=cmd_train_denoiser)

    codec = train_sub.add_parser(
        "codec", help="fit the codec's quantiser on the training images' codes (genc compress)"
    )
    add_data_args(codec)
    codec.add_argument("--model", required=True, help="model folder holding the encoder")
    codec.add_argument(
        "--encoder", default="ge1", help="encoder family: ge1, vae, aegan, robust, ge0"
    )
    codec.add_argument(
        "--kind",
        default="transform",
        choices=["transform", "uniform"],
        help="transform: principal axes, one step size (default); uniform: per-coordinate bins",
    )
    codec.set_defaults(func=cmd_train_codec)

    ev = sub.add_parser(
        "evaluate-model",
        help="a model's quality as a prior: representation error, FID, rock measures",
    )
    ev.add_argument("model", help="model folder or shipped model name")
    add_data_args(ev)
    ev.add_argument("-o", "--output", required=True, help="output folder")
    ev.add_argument("--n", type=int, default=500, help="held-out images and samples")
    ev.add_argument(
        "--n-fit", type=int, default=100, help="held-out images for the representation error"
    )
    ev.add_argument("--steps", type=int, default=500, help="CSGM steps of the representation error")
    ev.add_argument("--restarts", type=int, default=2)
    ev.add_argument("--no-fid", action="store_true", help="skip the domain FID")
    ev.set_defaults(func=cmd_evaluate_model)

    comp = sub.add_parser("compress", help="compress images into .genc files (the encoder code)")
    comp.add_argument("inputs", nargs="+", help="image files or folders")
    comp.add_argument("-o", "--output", required=True, help="output folder")
    comp.add_argument("--model", default="mnist5k", help="model folder or shipped model name")
    comp.add_argument(
        "--encoder", default="ge1", help="encoder family: ge1, vae, aegan, robust, ge0"
    )
    comp.add_argument(
        "--bits", type=int, default=4, help="bits per code number before entropy coding: 1-6"
    )
    comp.add_argument("--batch-size", type=int, default=64)
    comp.add_argument("--overwrite", action="store_true", help="redo files already in -o")
    comp.set_defaults(func=cmd_compress)

    dec = sub.add_parser("decompress", help="decode .genc files into PNG images")
    dec.add_argument("inputs", nargs="+", help=".genc files or folders")
    dec.add_argument("-o", "--output", required=True, help="output folder")
    dec.add_argument("--model", default="mnist5k", help="the model the files were made with")
    dec.add_argument(
        "--encoder", default="ge1", help="encoder family: ge1, vae, aegan, robust, ge0"
    )
    dec.add_argument(
        "--decoder",
        default="ge",
        help="ge (search the generator for the code; sharp), autoencoder (fast) or amortized "
        "(G(R(code)): the latent regressor's start, no search)",
    )
    dec.add_argument(
        "--method-opt",
        action="append",
        metavar="KEY=VALUE",
        help="ge's options, repeatable: steps=500, restarts=2, latent_weight=0.1",
    )
    dec.add_argument("--batch-size", type=int, default=64)
    dec.add_argument("--overwrite", action="store_true", help="redo images already in -o")
    dec.set_defaults(func=cmd_decompress)

    restore = sub.add_parser("restore", help="restore degraded images (or --simulate a task)")
    restore.add_argument("inputs", nargs="+", help="image files or folders")
    restore.add_argument("-o", "--output", required=True, help="output folder")
    restore.add_argument("--model", default="mnist5k", help="model folder or shipped model name")
    restore.add_argument(
        "--task", required=True, help="denoise, deblur, superres, inpaint, cs, encoder_cs"
    )
    restore.add_argument(
        "--method",
        default="ge",
        help="ge, csgm, autoencoder, bm3d, tv, wiener, bicubic, biharmonic, ... (genc list)",
    )
    restore.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="task parameter, repeatable: sigma=0.4, factor=4, mask=block, m=64",
    )
    restore.add_argument(
        "--method-opt",
        action="append",
        metavar="KEY=VALUE",
        help="method option, repeatable: steps=500, restarts=2, lr=0.1",
    )
    restore.add_argument("--mask-file", help="inpainting: a mask image, white = known pixels")
    restore.add_argument(
        "--simulate",
        action="store_true",
        help="inputs are clean: degrade them first, then restore and score",
    )
    restore.add_argument("--batch-size", type=int, default=64)
    restore.add_argument("--seed", type=int, default=0)
    restore.add_argument(
        "--overwrite",
        action="store_true",
        help="redo every input; by default inputs that an earlier run into the "
        "same folder with the same settings finished are skipped",
    )
    restore.add_argument(
        "--candidates",
        type=int,
        default=0,
        metavar="K",
        help="also keep the K best distinct restarts per image "
        "(candidates/NAME_k.png, candidates.png; needs restarts >= K)",
    )
    restore.add_argument(
        "--min-distance",
        type=float,
        default=None,
        help="latent distance below which two restarts are the same candidate "
        "(default 0.1 sqrt(d))",
    )
    restore.add_argument(
        "--init-latents",
        metavar="PATH",
        help="start restart 0 of each image from its saved z* "
        "(PATH/NAME.safetensors, or an earlier output folder's latents/)",
    )
    restore.add_argument(
        "--lambda",
        dest="latent_weight",
        metavar="VALUE",
        help="latent prior weight of ge / csgm: a number, or 'auto' (chosen "
        "from the measurements: discrepancy principle or held-out pixels)",
    )
    restore.set_defaults(func=cmd_restore)

    demo = sub.add_parser("demo", help="every task on 16 held-out digits with the shipped model")
    demo.add_argument("--out", default="genc-demo")
    demo.add_argument("--overwrite", action="store_true", help="redo results already in --out")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="run a benchmark spec (JSON) of methods x tasks")
    bench.add_argument("config")
    bench.add_argument("--model", default="mnist5k")
    bench.add_argument("--out", required=True)
    bench.add_argument(
        "--tasks", help="comma-separated task names of the spec to run (default all)"
    )
    bench.add_argument(
        "--overwrite",
        action="store_true",
        help="redo every pair; by default pairs already in OUT/results.csv with "
        "the same spec and model are kept",
    )
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
    except OSError as e:  # the machine's, not the input's: a full disk, a read-only folder
        where = f" {e.filename}" if e.filename else ""
        print(f"genc: error: cannot write or read{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genc: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
