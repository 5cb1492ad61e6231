"""Paired PSNR differences between rows of different `genc bench` folders run on the same split
and seed (a spec keys its options by method name, so two settings of one method are two
folders). The images of each (folder, task, method) row are read from its ``outputs/`` (8-bit),
the clean images from the split; rows are paired on the first ``--n`` images, which every bench
of that split and seed measures alike whatever its ``n_images``.

python experiments/paired_rows.py --data mnist5k --n 50 \
    --row ge=experiments/results/mnist_tasks_a:ge \
    --row ge_robust_adapt=experiments/results/mnist_adapt_robust:ge ...
prints, per task, each row's mean PSNR and every row against the first as a paired difference
with its 95 % confidence interval.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from generative_encoder.cli import parse_options
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import paired_difference, psnr
from generative_encoder.io.checkpoints import load_tensors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--tasks", required=True, help="comma-separated task names")
    p.add_argument(
        "--row",
        action="append",
        required=True,
        help="LABEL=FOLDER[,FOLDER...]:METHOD (the first folder holding the task is read)",
    )
    args = p.parse_args()
    options = parse_options(args.data_opt, "--data-opt")
    clean = stack_images(get_dataset(args.data, args.split, **options), range(args.n))
    rows = []
    for spec in args.row:
        label, _, rest = spec.partition("=")
        folders, _, method = rest.rpartition(":")
        rows.append((label, [Path(f) for f in folders.split(",")], method))
    print("| task | row | PSNR (dB) | against " + rows[0][0] + " (dB, 95 % CI) |")
    print("| --- | --- | ---: | --- |")
    for task in args.tasks.split(","):
        values = {}
        for label, folders, method in rows:
            for folder in folders:
                path = folder / "outputs" / task / f"{method}.safetensors"
                if path.exists():
                    x_hat = load_tensors(path)["x_hat"][: args.n].float() / 255
                    values[label] = psnr(x_hat, clean)
                    break
        base = rows[0][0]
        for label, _, _ in rows:
            if label not in values:
                continue
            line = f"| {task} | {label} | {values[label].mean():.2f} |"
            if label != base and base in values:
                d = paired_difference(values[label], values[base])
                noise = " within noise" if d["low"] <= 0 <= d["high"] else ""
                line += f" {d['mean']:+.2f} [{d['low']:.2f}, {d['high']:.2f}]{noise} |"
            else:
                line += " |"
            print(line)


if __name__ == "__main__":
    with torch.no_grad():
        main()
