"""The learned-codec peer of ``rate_distortion.py``: CompressAI's factorized prior (Balle et al.
2018), trained here from scratch on the same training images, one model per rate.

Runs in its own environment (``benchmarks/compressai_peer.sh`` makes it): CompressAI 1.2.8
requires numpy < 2 and the project's MNIST source numpy >= 2.3.5, so the two never share one.
This script therefore imports neither the project nor its data code; it reads the arrays that
``rate_distortion.py --export-peer DIR`` wrote:

    DIR/train.npy   uint8 (N, C, H, W)   training images
    DIR/test.npy    uint8 (n, C, H, W)   the benchmark's test images

and writes, for each lambda, ``DIR/peer/lambda=<L>/`` with ``model.safetensors`` (the trained
weights; a finished lambda is skipped on a re-run), ``train_log.csv``, ``decoded.npy`` (uint8, the
test images through the real range coder: ``compress`` then ``decompress``), ``sizes.json``
(bytes of each test image's file) and ``files/NNNN.bin`` (the files themselves).

A peer file is the range coder's bytes alone: no header (the model fixes the image size), which
favours the peer by the GE codec's 14 bytes of header and checksum.

Images whose side is not a multiple of 16 (the four stride-2 stages) are padded by edge
replication and cropped after decoding. Architecture: ``FactorizedPrior(N, M)`` with its first
and last convolutions for C channels; loss ``lambda * 255^2 * MSE + bpp`` (CompressAI's
``RateDistortionLoss``), Adam 1e-4 (1e-3 for the entropy model's quantiles: the auxiliary loss),
batch 16, a fixed number of steps (set it so that training takes no longer than the GAN did).

Usage: python benchmarks/compressai_peer.py DIR --lambdas 0.0018,0.0067,0.025 --steps 6000
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from compressai.models import FactorizedPrior
from compressai.models.utils import conv, deconv
from safetensors.torch import load_file, save_file


def peer_model(channels: int, n: int, m: int) -> FactorizedPrior:
    model = FactorizedPrior(n, m)
    model.g_a[0] = conv(channels, n)
    model.g_s[-1] = deconv(n, channels)
    return model


def pad16(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % 16, (-w) % 16
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def train(model, images: torch.Tensor, lmbda: float, steps: int, batch: int, log: Path) -> float:
    """Fit ``model`` to uint8 ``images`` (N, C, H, W); returns the wall time in seconds."""
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=1e-4)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    with open(log, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss", "mse", "bpp", "aux", "seconds"])
        for step in range(1, steps + 1):
            idx = torch.randint(len(images), (batch,), generator=gen)
            x = pad16(images[idx].float() / 255)
            out = model(x)
            pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
            bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / pixels
            mse = F.mse_loss(out["x_hat"], x)
            loss = lmbda * 255**2 * mse + bpp
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(main_params, 1.0)
            opt.step()
            aux = model.aux_loss()
            aux_opt.zero_grad()
            aux.backward()
            aux_opt.step()
            if step % 100 == 0 or step == steps:
                row = [step, loss.item(), mse.item(), bpp.item(), aux.item()]
                writer.writerow(row + [round(time.perf_counter() - t0, 1)])
                f.flush()
    return time.perf_counter() - t0


@torch.no_grad()
def code(model, images: torch.Tensor, folder: Path) -> tuple[np.ndarray, list[int]]:
    """Each test image through a real file: compress, write, read, decompress."""
    model.update(force=True)
    (folder / "files").mkdir(exist_ok=True)
    h, w = images.shape[-2:]
    decoded, sizes = [], []
    for i, image in enumerate(images):
        x = pad16(image[None].float() / 255)
        out = model.compress(x)
        data = out["strings"][0][0]
        path = folder / "files" / f"{i:04d}.bin"
        path.write_bytes(data)
        x_hat = model.decompress([[path.read_bytes()]], out["shape"])["x_hat"]
        decoded.append((x_hat[0, :, :h, :w] * 255).round().byte().numpy())
        sizes.append(len(data))
    return np.stack(decoded), sizes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", help="folder with train.npy and test.npy (rate_distortion --export-peer)")
    p.add_argument("--lambdas", default="0.0018,0.0067,0.025")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--n", type=int, default=64, help="channels N of the transforms")
    p.add_argument("--m", type=int, default=96, help="channels M of the latent")
    args = p.parse_args()
    root = Path(args.dir)
    train_images = torch.from_numpy(np.load(root / "train.npy"))
    test_images = torch.from_numpy(np.load(root / "test.npy"))
    channels = train_images.shape[1]
    for lmbda in map(float, args.lambdas.split(",")):
        folder = root / "peer" / f"lambda={lmbda:g}"
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = peer_model(channels, args.n, args.m)
        weights = folder / "model.safetensors"
        if weights.exists():
            model.load_state_dict(load_file(weights), strict=False)
            seconds = json.loads((folder / "train.json").read_text())["seconds"]
        else:
            seconds = train(model, train_images, lmbda, args.steps, args.batch, folder / "log.csv")
            state = {k: v.contiguous() for k, v in model.state_dict().items()}
            save_file(state, folder / "model.safetensors.tmp")
            (folder / "model.safetensors.tmp").rename(weights)
            meta = vars(args) | {"lambda": lmbda, "seconds": seconds, "channels": channels}
            (folder / "train.json").write_text(json.dumps(meta, indent=1))
        model.eval()
        decoded, sizes = code(model, test_images, folder)
        np.save(folder / "decoded.npy", decoded)
        (folder / "sizes.json").write_text(json.dumps(sizes))
        mse = ((decoded.astype(np.float64) - test_images.numpy()) ** 2).mean() / 255**2
        print(
            json.dumps(
                {
                    "lambda": lmbda,
                    "train_s": round(seconds, 1),
                    "bytes": float(np.mean(sizes)),
                    "psnr_of_mean_mse": round(10 * math.log10(1 / mse), 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
