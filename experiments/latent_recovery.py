"""Latent vector recovery tables (Tripathi, Lipton & Nguyen) on a uniform-latent GAN.

Table 1: LVR with no clipping / projected gradient / stochastic clipping, PSNR on GENERATED images
         (z ~ U[-1, 1]^d, x = G(z)) with Gaussian noise sigma.
Table 2: LVR vs LVR-SA vs BM3D vs GE for several sigma, on generated and on real test images.

The ground truth of generated images is G(z_true), which bench cannot express, hence this script.
The sharpness attributes are computed by ``lvr_sa`` itself from other generated images (its own
seed) and stored beside the model. No method sees a clean image.
Usage: OMP_NUM_THREADS=1 python experiments/latent_recovery.py --model runs/mnist5k_uniform
       [--n 64] [--sigmas 0.1,0.2,0.4] [--clip-sigmas 0.1] [--out DIR] [--data-opt root=DIR]
"""

import argparse
import json
import time
from pathlib import Path

import torch

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import psnr, ssim
from generative_encoder.io.checkpoints import load_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="runs/mnist5k_uniform")
parser.add_argument("--n", type=int, default=64)
parser.add_argument("--sigmas", default="0.1,0.2,0.4")
parser.add_argument("--clip-sigmas", default="0.1")
parser.add_argument("--test-seed", type=int, default=12345, help="seeds the generated test latents")
parser.add_argument("--methods", default="lvr,lvr_sa,bm3d,ge")
parser.add_argument("--out", default="experiments/results/latent_recovery")
parser.add_argument("--steps", type=int, default=500, help="Adam steps of every latent search")
parser.add_argument("--n-attribute", type=int, default=256, help="generated images per attribute")
parser.add_argument("--cache", default=None, help="folder for attribute files (default: model's)")
parser.add_argument(
    "--data-opt",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="option of the model's dataset for the real test images, e.g. root=DIR",
)
args = parser.parse_args()

model = load_model(args.model)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
d = model.generator.latent_dim
z_true = torch.rand(args.n, d, generator=torch.Generator().manual_seed(args.test_seed)) * 2 - 1
with torch.no_grad():
    generated = model.generator(z_true)  # (n, C, H, W)
data_options = {}
for item in args.data_opt:
    key, _, value = item.partition("=")
    try:
        data_options[key] = json.loads(value)
    except json.JSONDecodeError:
        data_options[key] = value
real = stack_images(get_dataset(model.info["dataset"], "test", **data_options), range(args.n))
sets = {"generated": generated, "real": real}
records, lines = [], []
t_start = time.perf_counter()


def scored(x_hat, x):
    return psnr(x_hat, x).mean().item(), ssim(x_hat, x).mean().item()


def emit(line=""):
    lines.append(line)
    print(line, flush=True)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(records, indent=1) + "\n")


emit(
    f"model {args.model} (latent {d} ~ U[-1, 1]), {args.n} images per set; Adam lr 0.1, "
    f"{args.steps} steps, 2 restarts; sharpness attributes from {args.n_attribute} generated "
    "images; PSNR (dB) / SSIM, mean over images"
)
clip_sigmas = [float(s) for s in args.clip_sigmas.split(",") if s]
emit()
emit("### Clipping strategies, generated images")
emit()
emit(
    "| sigma | no clipping | projected gradient | stochastic clipping | latent error "
    "(none / proj / stoch) |"
)
emit("| ---: | ---: | ---: | ---: | --- |")
for sigma in clip_sigmas:
    physics = make_physics("denoise", model.image_shape, sigma=sigma, seed=1)
    with torch.no_grad():
        y = physics(generated)
    cells, errors = [], []
    for clip in ("none", "project", "stochastic"):
        t0 = time.perf_counter()
        result = METHODS.build("lvr", model=model, clip=clip, steps=args.steps).solve(y, physics)
        p, s = scored(result.x, generated)
        err = (result.z.cpu() - z_true).norm(dim=1).mean().item()
        records.append(
            {
                "table": "clip",
                "sigma": sigma,
                "clip": clip,
                "psnr": p,
                "ssim": s,
                "latent_error": err,
                "seconds": time.perf_counter() - t0,
            }
        )
        cells.append(f"{p:.2f} / {s:.3f}")
        errors.append(f"{err:.2f}")
    emit(f"| {sigma:g} | " + " | ".join(cells) + " | " + " / ".join(errors) + " |")

methods = args.methods.split(",")
emit()
emit("### LVR vs LVR-SA vs BM3D vs GE")
emit()
emit("| images | sigma | " + " | ".join(methods) + " |")
emit("| --- | ---: | " + " | ".join("---:" for _ in methods) + " |")
for set_name, x in sets.items():
    for sigma in [float(s) for s in args.sigmas.split(",")]:
        physics = make_physics("denoise", model.image_shape, sigma=sigma, seed=1)
        with torch.no_grad():
            y = physics(x)
        cells, lvr_z = [], None
        for name in methods:
            options = {}
            if name in ("lvr", "lvr_sa", "ge"):
                options["steps"] = args.steps
            if name == "ge":
                options["clip"] = "project"
            if name == "lvr_sa":
                options.update(n_attribute=args.n_attribute, cache=args.cache)
            method = METHODS.build(name, model=model, **options)
            if name == "lvr_sa":
                t0 = time.perf_counter()
                attribute = method.sharpness_attribute(sigma)  # made or read before the clock
                records.append(
                    {
                        "table": "attribute",
                        "sigma": sigma,
                        "images": set_name,
                        "norm": attribute.norm().item(),
                        "seconds": time.perf_counter() - t0,
                    }
                )
            t0 = time.perf_counter()
            if name == "lvr_sa" and lvr_z is not None:
                # lvr_sa's own search is LVR's (same options, same starts): reuse its z, add s
                with torch.no_grad():
                    s_attr = method.sharpness_attribute(sigma).to(lvr_z)
                    x_hat = model.generator((lvr_z + s_attr).clamp(-1, 1))
            elif name == "lvr":
                result = method.solve(y, physics)
                lvr_z, x_hat = result.z.detach(), result.x.detach()
            else:
                x_hat = method(y, physics).detach()
            p, s = scored(x_hat, x)
            records.append(
                {
                    "table": "denoise",
                    "images": set_name,
                    "sigma": sigma,
                    "method": name,
                    "psnr": p,
                    "ssim": s,
                    "seconds": time.perf_counter() - t0,
                }
            )
            cells.append(f"{p:.2f} / {s:.3f}")
        emit(f"| {set_name} | {sigma:g} | " + " | ".join(cells) + " |")
emit()
emit(f"wall time {time.perf_counter() - t_start:.0f} s")
