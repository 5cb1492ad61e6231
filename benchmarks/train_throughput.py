"""Training speed: seconds per GAN step and per epoch, with and without bf16 autocast, on one and
two threads, as two DistributedDataParallel processes (torchrun, gloo) of one thread each, and
with the R1 penalty at every step against lazy R1 (every 16th step).

Every variant is the same `genc train gan` run (mnist5k: the shipped recipe's width 48 DCGAN at
28 px; `--size64`: 64 px synthetic rock patches, width 32, the CelebA / rock recipe's network)
launched as a subprocess so that its thread count is its own. Seconds per step are read from the
run's `gan_log.csv`, skipping the first `--warmup` steps. Prints one Markdown table; the speed-up
column is against the first row of the same size, measured in the same run.

Usage: python benchmarks/train_throughput.py [--steps 40] [--warmup 5] [--size64] [--no-amp]
       python benchmarks/train_throughput.py --size64 --only-size64 --width64 64 \
           --variants r1,r1-lazy     # the faces recipe's R1 at every step against lazy R1
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--warmup", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--size64", action="store_true", help="also 64 px (synthetic rock, width 32)")
parser.add_argument(
    "--no-amp", action="store_true", help="skip the bf16 rows (slow on CPUs without native bf16)"
)
parser.add_argument("--only-size64", action="store_true", help="skip the 28 px rows")
parser.add_argument("--width64", type=int, default=32, help="network width at 64 px")
parser.add_argument(
    "--variants",
    default="fp32,fp32-2,ddp,bf16,bf16-2",
    help="rows, comma-separated: fp32, fp32-2, ddp, bf16, bf16-2, r1, r1-lazy",
)
args = parser.parse_args()

genc = shutil.which("genc") or str(Path(sys.executable).with_name("genc"))
SIZES = {28: (["--data", "mnist5k", "--width", "48", "--latent-dim", "64"], 4500)}
if args.size64:
    SIZES[64] = (
        [
            "--data",
            "synthetic_rock",
            "--data-opt",
            "size=64",
            "--data-opt",
            "n=2000",
            "--width",
            str(args.width64),
            "--latent-dim",
            "128",
        ],
        1800,
    )
if args.only_size64:
    del SIZES[28]


def seconds_per_step(log: Path) -> float:
    with log.open() as f:
        rows = list(csv.DictReader(f))
    t = {int(r["step"]): float(r["seconds"]) for r in rows}
    last = max(t)
    return (t[last] - t[args.warmup]) / (last - args.warmup)


def run(size: int, threads: int, amp: bool, ranks: int, extra: list[str]) -> float:
    data_args, _ = SIZES[size]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [
            genc,
            "train",
            "gan",
            *data_args,
            "--out",
            str(out),
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--checkpoint-every",
            str(10 * args.steps),
            "--sample-every",
            str(10 * args.steps),
            "--seed",
            "0",
            *(["--amp"] if amp else []),
            *extra,
        ]
        if ranks > 1:
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node",
                str(ranks),
                "--no-python",
                *cmd,
            ]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        return seconds_per_step(out / "gan_log.csv")


# name: (label, threads per process, bf16 autocast, processes, extra options)
R1 = ["--r1", "1", "--mbstd", "--augment", "translation"]  # the CelebA recipe's D side
KNOWN = {
    "fp32": ("fp32", 1, False, 1, []),
    "fp32-2": ("fp32", 2, False, 1, []),
    "ddp": ("DDP 2 x 1 thread", 1, False, 2, []),
    "bf16": ("bf16 autocast", 1, True, 1, []),
    "bf16-2": ("bf16 autocast", 2, True, 1, []),
    "r1": ("R1 every step", 1, False, 1, R1),
    "r1-lazy": ("lazy R1, every 16th step", 1, False, 1, [*R1, "--r1-every", "16"]),
}
names = args.variants.split(",")
if unknown := [n for n in names if n not in KNOWN]:
    sys.exit(f"unknown variants {unknown}; known: {', '.join(KNOWN)}")
VARIANTS = [KNOWN[n] for n in names if not (args.no_amp and KNOWN[n][2])]

t0 = time.perf_counter()
print(
    f"| size | variant | threads / process | processes | s / step (batch {args.batch_size}) "
    "| s / epoch | images / s | vs the first row |"
)
print("|---|---|---:|---:|---:|---:|---:|---:|")
for size, (_, n_train) in SIZES.items():
    base = None
    for name, threads, amp, ranks, extra in VARIANTS:
        s = run(size, threads, amp, ranks, extra)
        base = base or s
        print(
            f"| {size} | {name} | {threads} | {ranks} | {s:.3f} | "
            f"{s * n_train / args.batch_size:.1f} | {args.batch_size / s:.1f} | "
            f"{base / s:.2f}x |",
            flush=True,
        )
print(
    f"\n{args.steps} steps per row, the first {args.warmup} not timed; an epoch is "
    f"{', '.join(f'{n} images at {s} px' for s, (_, n) in SIZES.items())}; "
    f"{time.perf_counter() - t0:.0f} s in all"
)
