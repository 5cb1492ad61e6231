"""Rate-distortion curves of the GE codec (``genc compress``) against JPEG, WebP and JPEG 2000.

Every point is a set of real files: each test image is compressed on its own (the GE codec's
``.genc`` bytes; Pillow's JPEG and WebP at a swept quality and, where Pillow has OpenJPEG,
JPEG 2000 at a swept target PSNR), and its rate is the whole file's size in bits per pixel
(8 x bytes / (H x W), headers included). Distortion: PSNR and SSIM of the decoded image against
the original (per image, then the mean), and the domain FID of the decoded set against the
originals (features of the project's domain classifier, :mod:`generative_encoder.eval.fid`,
trained on the training split: its labels, or the four rotations of unlabelled images;
comparable only within this run).

GE codec rows: ``ge`` decodes by GE (``steps`` Adam steps, ``restarts`` starts, the method's
default lambda), ``autoencoder`` by the autoencoder's decoder; bits 1-6 of the model's fitted
quantiser (``genc train codec``). Classical rows sweep Pillow's quality. ``at GE's rate`` lines
interpolate each classical curve linearly in mean bits per pixel at each GE point (no classical
point below GE's lowest rate: the classical codec cannot make a file that small; then it says
so). Throughput: images per second of compress and of each decoder on this machine, one thread
count as set by OMP_NUM_THREADS.

Writes OUT/rd.csv (one row per codec and setting), rd.md, rd.png (bpp vs PSNR, SSIM, FID unless
``--no-fid``, the S2 and Euler errors with ``--porous``) and
grid.png (originals, then each codec at the setting closest to GE's 2-bit file size); OUT/points/
keeps each GE codec point's decoded images (a rerun with the same files reads them instead of
decoding again).

``--porous`` (binary images such as rock, which have no domain FID) adds each point's mean
pore-space errors against the originals (:func:`generative_encoder.eval.porous.restoration_errors`:
porosity, S2(r) for r <= 16, Euler characteristic per 1000 pixels), as the rock tables report
them, and pairs them against the peer.

``--peer DIR`` adds CompressAI's factorized prior (``compressai_peer.sh``: trained on the same
training images in its own environment; its files have no header), whose decoded test images
and file sizes the peer script wrote to DIR.

Usage: python benchmarks/rate_distortion.py --out runs/rd_mnist5k
       bash benchmarks/compressai_peer.sh runs/peer_mnist5k 25000 --n 200
       python benchmarks/rate_distortion.py --out runs/rd_mnist5k --peer runs/peer_mnist5k
       python benchmarks/rate_distortion.py --model runs/berea64 --data rock \\
           --data-opt path=../shared/data/rock/berea.zip ... --out runs/rd_berea64
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, features

from generative_encoder.apps.codec import Codec
from generative_encoder.cli import parse_options
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.attributes import feature_training_set
from generative_encoder.eval.fid import FIDScorer, classifier_features, domain_classifier
from generative_encoder.eval.metrics import paired_difference, psnr, ssim
from generative_encoder.eval.porous import restoration_errors
from generative_encoder.io.checkpoints import load_tensors, save_tensors
from generative_encoder.io.images import save_grid
from generative_encoder.io.zoo import resolve_model

QUALITIES = {
    "JPEG": [1, 5, 10, 20, 30, 50, 70, 90],
    "WEBP": [0, 5, 10, 20, 30, 50, 70, 90],
    # target PSNR in dB (OpenJPEG's "rates" mode cannot go below its header-bound size on
    # small images, where every ratio gives the same file)
    "JPEG2000": [15, 20, 25, 30, 35, 40, 50],
}


def pillow_round_trip(x: torch.Tensor, fmt: str, quality: int) -> tuple[torch.Tensor, int]:
    """x (C, H, W) in [0, 1] through a real Pillow file: (decoded image, file bytes)."""
    array = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    if fmt == "JPEG2000":
        image.save(buffer, fmt, quality_mode="dB", quality_layers=[quality], irreversible=True)
    else:
        image.save(buffer, fmt, quality=quality)
    data = buffer.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert(image.mode), dtype=np.float32)
    decoded = torch.from_numpy(decoded / 255.0)
    decoded = decoded[None] if decoded.ndim == 2 else decoded.permute(2, 0, 1)
    return decoded, len(data)


POROUS = ("porosity_err", "s2_err", "euler_err")


def point(
    codec: str, setting: str, x: torch.Tensor, x_hat: torch.Tensor, sizes, fid, porous: bool
) -> dict:
    pixels = x.shape[-1] * x.shape[-2]
    errors = restoration_errors(x_hat, x) if porous else {}
    return {
        "codec": codec,
        "setting": setting,
        "bpp": float(np.mean(sizes)) * 8 / pixels,
        "bytes": float(np.mean(sizes)),
        "psnr": float(psnr(x_hat, x).mean()),
        "ssim": float(ssim(x_hat, x).mean()),
        "fid": fid.score(x_hat) if fid else float("nan"),
        **{key: float(value.mean()) for key, value in errors.items()},
    }


def interpolate(rows: list[dict], bpp: float, key: str) -> float | None:
    """A codec's metric at mean rate ``bpp`` (linear between its two nearest settings)."""
    pts = sorted((r["bpp"], r[key]) for r in rows)
    if bpp < pts[0][0] or bpp > pts[-1][0]:
        return None
    return float(np.interp(bpp, [p[0] for p in pts], [p[1] for p in pts]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="mnist5k")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--n", type=int, default=200, help="test images (the first n)")
    p.add_argument("--bits", default="1,2,3,4,5,6")
    p.add_argument("--steps", type=int, default=500, help="GE decoder: Adam steps")
    p.add_argument("--restarts", type=int, default=2, help="GE decoder: random starts")
    p.add_argument("--no-fid", action="store_true")
    p.add_argument("--porous", action="store_true", help="add pore-space errors (binary images)")
    p.add_argument("--classifier-steps", type=int, default=1500)
    p.add_argument("--export-peer", metavar="DIR", help="write DIR/train.npy, DIR/test.npy; stop")
    p.add_argument("--peer", metavar="DIR", help="add compressai_peer.py's rows from DIR/peer")
    p.add_argument("--out")
    args = p.parse_args()
    if args.export_peer:
        export_peer(Path(args.export_peer), args)
        return
    if not args.out:
        p.error("--out is required")
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = parse_options(args.data_opt, "--data-opt")
    model = resolve_model(args.model)
    codec = Codec(model)
    test = get_dataset(args.data, "test", **options)
    x = stack_images(test, range(min(args.n, len(test))))
    fid = None
    if not args.no_fid:
        classifier = domain_classifier(
            feature_training_set(get_dataset(args.data, "train", **options)),
            out / "classifier",
            steps=args.classifier_steps,
        )
        fid = FIDScorer(classifier_features(classifier), x)
    rows, decoded, per_image, paired = [], {}, {}, []

    for bits in map(int, args.bits.split(",")):
        t0 = time.perf_counter()
        files = codec.compress(x, bits)
        t_enc = time.perf_counter() - t0
        sizes = [len(f) for f in files]
        files_digest = digest(files)
        for decoder, opts in (
            ("autoencoder", {}),
            ("ge", {"steps": args.steps, "restarts": args.restarts}),
        ):
            # each decoded point is kept, so a stopped or extended run (--peer) decodes it once
            kept = (
                out / "points" / f"{decoder}_bits={bits}_{args.steps}x{args.restarts}.safetensors"
            )
            stored = load_tensors(kept) if kept.is_file() else {}
            if torch.equal(stored.get("files", torch.empty(0)), files_digest):
                x_hat, t_enc, t_dec = stored["x_hat"], *stored["seconds"].tolist()
            else:  # none kept, or kept for other files (other images, model or --n)
                t0 = time.perf_counter()
                x_hat = codec.decompress(files, decoder, **opts)
                t_dec = time.perf_counter() - t0
                seconds = torch.tensor([t_enc, t_dec])
                save_tensors(kept, {"x_hat": x_hat, "seconds": seconds, "files": files_digest})
            row = point(f"genc-{decoder}", f"bits={bits}", x, x_hat, sizes, fid, args.porous)
            row.update(encode_img_s=len(x) / t_enc, decode_img_s=len(x) / t_dec)
            rows.append(row)
            decoded[(row["codec"], row["setting"])] = x_hat
            per_image[(decoder, bits)] = psnr(x_hat, x)
            print(json.dumps(row))
        gap = paired_difference(per_image[("ge", bits)], per_image[("autoencoder", bits)])
        paired.append({"bits": bits} | gap)

    formats = [f for f in QUALITIES if f != "JPEG2000" or features.check("jpg_2000")]
    for fmt in formats:
        for q in QUALITIES[fmt]:
            t0 = time.perf_counter()
            pairs = [pillow_round_trip(im, fmt, q) for im in x]
            elapsed = time.perf_counter() - t0
            x_hat = torch.stack([d for d, _ in pairs])
            sizes = [n for _, n in pairs]
            row = point(fmt.lower(), f"q={q}", x, x_hat, sizes, fid, args.porous)
            row.update(encode_img_s=len(x) / elapsed, decode_img_s=float("nan"))
            rows.append(row)
            decoded[(row["codec"], row["setting"])] = x_hat
            print(json.dumps(row))

    if args.peer:
        for row, x_hat in peer_rows(Path(args.peer), x, fid, args.porous):
            rows.append(row)
            decoded[(row["codec"], row["setting"])] = x_hat
            print(json.dumps(row))

    with open(out / "rd.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    against_peer = peer_pairs(rows, decoded, x, args.porous)
    write_markdown(out / "rd.md", rows, args, len(x), paired, against_peer)
    plot(out / "rd.png", rows, args.porous)
    grid(out / "grid.png", rows, decoded, x)


def digest(files: list[bytes]) -> torch.Tensor:
    """SHA-256 of the files in order, (32,) uint8: a kept point is only read for these files."""
    h = hashlib.sha256()
    for f in files:
        h.update(len(f).to_bytes(8, "little") + f)
    return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().byte().numpy()


def export_peer(folder: Path, args) -> None:
    """The arrays ``compressai_peer.py`` trains and codes on (it cannot import this project).
    The peer trains on every training image, as the GAN did: ``max_patches`` thins the test
    patches only."""
    options = parse_options(args.data_opt, "--data-opt")
    train_options = {k: v for k, v in options.items() if k != "max_patches"}
    train = get_dataset(args.data, "train", **train_options)
    test = get_dataset(args.data, "test", **options)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "train.npy", to_uint8(stack_images(train, range(len(train)))))
    np.save(folder / "test.npy", to_uint8(stack_images(test, range(min(args.n, len(test))))))


def peer_rows(folder: Path, x: torch.Tensor, fid, porous: bool):
    """Rows of the CompressAI peer: one per trained lambda, from its real files' sizes."""
    if not np.array_equal(np.load(folder / "test.npy"), to_uint8(x)):
        raise SystemExit(f"{folder}/test.npy holds other test images than this run's")
    settings = sorted((folder / "peer").glob("lambda=*/sizes.json"))
    if not settings:
        raise SystemExit(f"no finished peer in {folder}/peer: run benchmarks/compressai_peer.py")
    for sizes_file in settings:
        setting = sizes_file.parent
        x_hat = torch.from_numpy(np.load(setting / "decoded.npy")).float() / 255
        sizes = json.loads(sizes_file.read_text())
        row = point("compressai-factorized", setting.name, x, x_hat, sizes, fid, porous)
        row.update(encode_img_s=float("nan"), decode_img_s=float("nan"))
        yield row, x_hat


def peer_pairs(rows: list[dict], decoded: dict, x: torch.Tensor, porous: bool) -> list[dict]:
    """Each CompressAI row against each GE-codec decoder's point of nearest mean file size:
    paired per-image differences (GE codec minus peer) of PSNR and SSIM (and with ``porous``
    of the pore-space errors), 95 % intervals."""
    pairs = []
    for peer in (r for r in rows if r["codec"] == "compressai-factorized"):
        peer_hat = decoded[(peer["codec"], peer["setting"])]
        peer_err = restoration_errors(peer_hat, x) if porous else {}
        for decoder in ("genc-autoencoder", "genc-ge"):
            mine = min(
                (r for r in rows if r["codec"] == decoder),
                key=lambda r: abs(r["bytes"] - peer["bytes"]),
            )
            x_hat = decoded[(mine["codec"], mine["setting"])]
            pair = {
                "peer": peer,
                "mine": mine,
                "psnr": paired_difference(psnr(x_hat, x), psnr(peer_hat, x)),
                "ssim": paired_difference(ssim(x_hat, x), ssim(peer_hat, x)),
            }
            if porous:
                mine_err = restoration_errors(x_hat, x)
                pair.update(
                    {key: paired_difference(mine_err[key], peer_err[key]) for key in POROUS}
                )
            pairs.append(pair)
    return pairs


def write_markdown(
    path: Path, rows: list[dict], args, n: int, paired: list[dict], against_peer: list[dict]
) -> None:
    lines = [
        f"# Rate-distortion: {args.model} on {n} test images of {args.data}",
        "",
        f"GE decoder: {args.steps} steps x {args.restarts} restarts. Rates: whole files.",
        "",
        "| codec | setting | bytes | bpp | PSNR | SSIM | FID | enc img/s | dec img/s |"
        + (" porosity err | S2 err | Euler err |" if args.porous else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if args.porous else ""),
    ]
    for r in rows:
        lines.append(
            f"| {r['codec']} | {r['setting']} | {r['bytes']:.1f} | {r['bpp']:.3f} | "
            f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['fid']:.2f} | {r['encode_img_s']:.0f} | "
            f"{r['decode_img_s']:.1f} |"
            + "".join(f" {r[key]:.4f} |" for key in POROUS if args.porous)
        )
    lines += ["", "## GE minus autoencoder decoding, PSNR per image (paired, 95 % interval)", ""]
    lines += ["| bits | mean (dB) | interval | n |", "|---|---|---|---|"]
    for g in paired:
        lines.append(
            f"| {g['bits']} | {g['mean']:+.2f} | [{g['low']:+.2f}, {g['high']:+.2f}] | {g['n']} |"
        )
    lines += ["", "## Classical codecs at the GE codec's rates (linear interpolation)", ""]
    lines += [
        "| GE point | bpp | GE PSNR | GE SSIM | peer | peer PSNR | peer SSIM |",
        "|---|---|---|---|---|---|---|",
    ]
    peers = sorted({r["codec"] for r in rows if not r["codec"].startswith("genc")})
    for r in rows:
        if not r["codec"].startswith("genc"):
            continue
        for peer in peers:
            mine = [s for s in rows if s["codec"] == peer]
            p_psnr = interpolate(mine, r["bpp"], "psnr")
            p_ssim = interpolate(mine, r["bpp"], "ssim")
            if p_psnr is None:
                low = min(s["bpp"] for s in mine)
                shown = f"no file this small (smallest {low:.3f} bpp)"
                lines.append(
                    f"| {r['codec']} {r['setting']} | {r['bpp']:.3f} | {r['psnr']:.2f} | "
                    f"{r['ssim']:.3f} | {peer} | {shown} | |"
                )
            else:
                lines.append(
                    f"| {r['codec']} {r['setting']} | {r['bpp']:.3f} | {r['psnr']:.2f} | "
                    f"{r['ssim']:.3f} | {peer} | {p_psnr:.2f} | {p_ssim:.3f} |"
                )
    if against_peer:
        lines += [
            "",
            "## GE codec minus CompressAI at the nearest mean file size (paired, 95 % interval)",
            "",
            "| peer | peer bytes | GE codec point | its bytes | PSNR (dB) | SSIM |"
            + (" porosity err | S2 err | Euler err |" if args.porous else ""),
            "|---|---|---|---|---|---|" + ("---|---|---|" if args.porous else ""),
        ]
        for g in against_peer:
            d_psnr, d_ssim = g["psnr"], g["ssim"]
            lines.append(
                f"| {g['peer']['setting']} | {g['peer']['bytes']:.1f} | {g['mine']['codec']} "
                f"{g['mine']['setting']} | {g['mine']['bytes']:.1f} | {d_psnr['mean']:+.2f} "
                f"[{d_psnr['low']:+.2f}, {d_psnr['high']:+.2f}] | {d_ssim['mean']:+.3f} "
                f"[{d_ssim['low']:+.3f}, {d_ssim['high']:+.3f}] |"
                + "".join(
                    f" {g[key]['mean']:+.4f} [{g[key]['low']:+.4f}, {g[key]['high']:+.4f}] |"
                    for key in POROUS
                    if key in g
                )
            )
    path.write_text("\n".join(lines) + "\n")


def plot(path: Path, rows: list[dict], porous: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"psnr": "PSNR (dB)", "ssim": "SSIM"}
    if not all(np.isnan(r["fid"]) for r in rows):
        panels["fid"] = "domain FID (lower is better)"
    if porous:
        panels |= {"s2_err": "S2(r) error (lower is better)", "euler_err": "Euler density error"}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for codec in dict.fromkeys(r["codec"] for r in rows):
        mine = sorted((r for r in rows if r["codec"] == codec), key=lambda r: r["bpp"])
        for ax, key in zip(axes, panels):
            ax.plot([r["bpp"] for r in mine], [r[key] for r in mine], "o-", label=codec, ms=3)
    for ax, label in zip(axes, panels.values()):
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (whole file)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def grid(path: Path, rows, decoded, x: torch.Tensor, n: int = 10) -> None:
    target = next(r["bpp"] for r in rows if r["codec"] == "genc-ge" and r["setting"] == "bits=2")
    pictures, labels = [x[:n]], ["original"]
    for codec in dict.fromkeys(r["codec"] for r in rows):
        best = min((r for r in rows if r["codec"] == codec), key=lambda r: abs(r["bpp"] - target))
        pictures.append(decoded[(codec, best["setting"])][:n])
        labels.append(f"{codec} {best['setting']} {best['bpp']:.2f} bpp")
    save_grid(path, pictures, labels)


if __name__ == "__main__":
    main()
