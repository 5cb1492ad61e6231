"""The latent regressor's real phase, judged on TRAINING images it did not see: copy a model
folder, train its regressor anew (``--steps`` sample steps, then ``--real-steps`` steps that add
real training images) on every training image but the first ``--n``, so that
``benchmarks/time_to_quality.py --split train --n N --model OUT`` measures the amortized start on
training images held out of that phase.

python experiments/regressor_real_phase.py --out runs/regressor_real --steps 8000 \\
    --regressor-hidden 1024 --real-steps 2000 --n 256
python experiments/regressor_real_phase.py --out runs/regressor_samples --steps 8000 \\
    --regressor-hidden 1024 --real-steps 0 --n 256      # the sample phase alone
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from torch.utils.data import Subset

from generative_encoder.cli import add_data_args, parse_options
from generative_encoder.data import get_dataset
from generative_encoder.io.zoo import resolve_model
from generative_encoder.training.regressor import RegressorConfig, train_regressor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mnist5k")
    add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="the model folder copy to write")
    p.add_argument("--n", type=int, default=256, help="first training images kept out")
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--real-steps", type=int, default=2000)
    p.add_argument("--regressor-hidden", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new --out")
    shutil.copytree(resolve_model(args.model).folder, args.out)
    train = get_dataset(args.data, "train", **parse_options(args.data_opt, "--data-opt"))
    config = RegressorConfig(
        steps=args.steps, real_steps=args.real_steps, hidden=args.regressor_hidden
    )
    logs = train_regressor(
        args.out, config, images=Subset(train, range(args.n, len(train))), overwrite=True
    )
    print({k: round(v, 5) for k, v in logs.items()})


if __name__ == "__main__":
    main()
