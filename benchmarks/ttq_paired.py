"""Paired PSNR difference between two rows of ``time_to_quality.py`` outputs run on the same
problems (same model, split, ``--n``, ``--sigma`` and ``--seed``): per-image PSNRs, the mean
difference of the first row minus the second and its 95 % confidence interval.

Usage: python benchmarks/ttq_paired.py A.json "ge start=amortized lr=0.05@50" \\
           B.json "ge start=prior@500"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from generative_encoder.eval.metrics import paired_difference


def row_psnrs(path: str, key: str) -> torch.Tensor:
    """(N,) per-image PSNRs of the row named ``NAME@STEPS`` in a time_to_quality json."""
    name, _, steps = key.rpartition("@")
    rows = json.loads(Path(path).read_text())["rows"]
    for row in rows:
        if row["row"] == name and str(row["steps"]) in (steps, f"{steps}.0"):
            if "psnr_each" not in row:
                raise SystemExit(
                    f"{path}: row {key!r} has no per-image PSNRs (rerun the benchmark)"
                )
            return torch.tensor(row["psnr_each"])
    known = sorted({f"{r['row']}@{r['steps']}" for r in rows})
    raise SystemExit(f"{path}: no row {key!r}; rows: {', '.join(known)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first_json")
    p.add_argument("first_row", help="NAME@STEPS, e.g. 'ge start=amortized lr=0.05@50'")
    p.add_argument("second_json")
    p.add_argument("second_row")
    args = p.parse_args()
    a = row_psnrs(args.first_json, args.first_row)
    b = row_psnrs(args.second_json, args.second_row)
    if a.shape != b.shape:
        raise SystemExit(f"the rows cover {len(a)} and {len(b)} images: not the same problems")
    d = paired_difference(a, b)
    print(
        f"{args.first_row}: {a.mean():.2f} dB, {args.second_row}: {b.mean():.2f} dB, "
        f"difference {d['mean']:+.2f} dB [{d['low']:+.2f}, {d['high']:+.2f}] (95 %, n = {d['n']})"
        + (", within noise" if d["low"] <= 0 <= d["high"] else "")
    )


if __name__ == "__main__":
    main()
