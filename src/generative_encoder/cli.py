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


def progress_callback(total: int, desc: str, keys: Sequence[str], start: int = 0):
    """A tqdm bar and the ``on_step(step, logs)`` callback that advances it."""
    bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True, mininterval=0.5)

    def on_step(step: int, logs: dict) -> None:
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
                       checkpoint_every=args.checkpoint_every, sample_every=args.sample_every)
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


def cmd_list(args) -> None:
    from .data import list_datasets
    from .methods import METHODS
    from .physics import TASKS

    print("datasets:", ", ".join(list_datasets()))
    print("tasks:   ", ", ".join(TASKS.names()))
    print("methods: ", ", ".join(METHODS.names()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
