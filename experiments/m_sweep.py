"""The GE preprint's Figures 5-6 on a digit model: MSE against the number of measurements m.

For each m, an encoder with an m-dimensional code is trained on the model's generator (real +
generated digits, the same recipe for every m), then ``genc bench`` runs on the same test digits:
Gaussian compressed sensing with m measurements (Lasso-DCT, CSGM, GE) and encoder sensing with
the m-dimensional code (GE, the autoencoder). Writes ``OUT/m_sweep.csv``, ``OUT/m_sweep.md`` and
``OUT/m_sweep.png``; each m's bench folder is ``OUT/m<m>/`` (resumable, as every bench run).

Usage: python experiments/m_sweep.py [--model mnist5k] [--ms 32,64,128,256] [--n 64]
           [--encoder-steps 2000] [--runs runs/m_sweep] [--out experiments/results/m_sweep]
"""

import argparse
import csv
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from generative_encoder.apps.bench import BenchSpec, TaskSpec, run_bench  # noqa: E402
from generative_encoder.data import get_dataset  # noqa: E402
from generative_encoder.io.checkpoints import load_model  # noqa: E402
from generative_encoder.io.zoo import SHIPPED_MODELS, shipped_model_dir  # noqa: E402
from generative_encoder.training import EncoderConfig, train_encoder  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="mnist5k", help="model folder or shipped name (its GAN)")
parser.add_argument("--ms", default="32,64,128,256")
parser.add_argument("--n", type=int, default=64, help="test digits")
parser.add_argument("--steps", type=int, default=500, help="solver iterations (the paper's)")
parser.add_argument("--encoder-steps", type=int, default=2000)
parser.add_argument("--runs", default="runs/m_sweep", help="where the per-m model folders go")
parser.add_argument("--out", default="experiments/results/m_sweep")
args = parser.parse_args()

source = (
    shipped_model_dir(args.model)
    if args.model in SHIPPED_MODELS and not Path(args.model).exists()
    else Path(args.model)
)
train_set, test_set = get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")
out = Path(args.out)
rows = []
t_start = time.perf_counter()
for m in (int(s) for s in args.ms.split(",")):
    folder = Path(args.runs) / f"m{m}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (
        "generator.safetensors",
        "generator.json",
        "discriminator.safetensors",
        "discriminator.json",
        "model.json",
    ):
        if not (folder / name).exists():
            shutil.copy(source / name, folder / name)
    if not (folder / "encoder.safetensors").exists() or not (folder / "done").exists():
        t0 = time.perf_counter()
        logs = train_encoder(
            train_set,
            test_set,
            folder,
            EncoderConfig(code_dim=m, width=16, steps=args.encoder_steps),
            resume=True,
        )
        (folder / "done").write_text(f"{time.perf_counter() - t0:.0f} s\n")
        print(
            f"m={m}: encoder trained in {time.perf_counter() - t0:.0f} s, test MSE real "
            f"{logs.get('mse_real_test', float('nan')):.5f}",
            flush=True,
        )
    spec = BenchSpec(
        data="mnist5k",
        split="test",
        n_images=args.n,
        tasks=(
            TaskSpec(f"cs-m{m}", "cs", {"m": m}),
            TaskSpec(f"encoder-cs-m{m}", "encoder_cs", {}),
        ),
        methods=("ge", "csgm", "autoencoder", "baseline"),
        method_options={"ge": {"steps": args.steps}, "csgm": {"steps": args.steps}},
    )
    for r in run_bench(
        spec,
        load_model(folder),
        out / f"m{m}",
        on_progress=lambda label: print(f"m={m} {label}", flush=True),
    ):
        sensing = "encoder" if r.task.startswith("encoder") else "gaussian"
        rows.append(
            {
                "m": m,
                "sensing": sensing,
                "method": r.method,
                "n": r.n,
                "mse": r.mse,
                "mse_std": r.mse_std,
                "psnr": r.psnr,
                "seconds": r.seconds,
            }
        )

with open(out / "m_sweep.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)

curves = {}
for r in rows:
    curves.setdefault(f"{r['method']} ({r['sensing']} sensing)", []).append((r["m"], r["mse"]))
lines = [
    "| method | " + " | ".join(f"m={m}" for m in sorted({r["m"] for r in rows})) + " |",
    "| --- |" + " ---: |" * len({r["m"] for r in rows}),
]
fig, ax = plt.subplots(figsize=(5.5, 4))
for label, points in curves.items():
    points.sort()
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label)
    lines.append(f"| {label} | " + " | ".join(f"{p[1]:.4f}" for p in points) + " |")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("measurements m")
ax.set_ylabel(f"mean MSE ({args.n} test digits)")
ax.set_title("MSE against measurement size")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out / "m_sweep.png", dpi=120)
(out / "m_sweep.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"({time.perf_counter() - t_start:.0f} s)")
