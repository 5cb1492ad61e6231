"""Training speed: seconds per GAN step and per epoch, with and without bf16 autocast, on one and
two threads, and as two DistributedDataParallel processes (torchrun, gloo) of one thread each.

Every variant is the same `genc train gan` run (mnist5k: the shipped recipe's width 48 DCGAN at
28 px; `--size64`: 64 px synthetic rock patches, width 32, the CelebA / rock recipe's network)
launched as a subprocess so that its thread count is its own. Seconds per step are read from the
run's `gan_log.csv`, skipping the first `--warmup` steps. Prints one Markdown table; the speed-up
column is against the fp32 one-thread row of the same size, measured in the same run.

Usage: python benchmarks/train_throughput.py [--steps 40] [--warmup 5] [--size64] [--no-amp]
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
            "32",
            "--latent-dim",
            "128",
        ],
        1800,
    )


def seconds_per_step(log: Path) -> float:
    with log.open() as f:
        rows = list(csv.DictReader(f))
    t = {int(r["step"]): float(r["seconds"]) for r in rows}
    last = max(t)
    return (t[last] - t[args.warmup]) / (last - args.warmup)


def run(size: int, threads: int, amp: bool, ranks: int) -> float:
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


VARIANTS = [("fp32", 1, False, 1), ("fp32", 2, False, 1), ("DDP 2 x 1 thread", 1, False, 2)]
if not args.no_amp:
    VARIANTS += [("bf16 autocast", 1, True, 1), ("bf16 autocast", 2, True, 1)]

t0 = time.perf_counter()
print(
    f"| size | variant | threads / process | processes | s / step (batch {args.batch_size}) "
    "| s / epoch | images / s | vs fp32, 1 thread |"
)
print("|---|---|---:|---:|---:|---:|---:|---:|")
for size, (_, n_train) in SIZES.items():
    base = None
    for name, threads, amp, ranks in VARIANTS:
        s = run(size, threads, amp, ranks)
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
