"""Porosity of a segmented rock volume slab by slab along its first axis (z), and of the
training and held-out parts of the split that ``RockPatches(test_fraction=...)`` makes: whether
a held-out sub-volume can be expected to look like the training volume at all.

python experiments/rock_slabs.py ../shared/data/rock/berea.zip --slab 50 --test-fraction 0.25
"""

from __future__ import annotations

import argparse
from pathlib import Path

from generative_encoder.data import read_volume


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("volume", type=Path)
    p.add_argument("--slab", type=int, default=50, help="slices per slab")
    p.add_argument("--test-fraction", type=float, default=0.25)
    args = p.parse_args()
    pore = read_volume(args.volume) > 127
    n = len(pore)
    cut = n - round(n * args.test_fraction)
    print(f"{args.volume}: {tuple(pore.shape)}, porosity {pore.mean():.4f}")
    for z in range(0, n, args.slab):
        print(f"z {z}-{min(z + args.slab, n) - 1}: {pore[z : z + args.slab].mean():.4f}")
    print(
        f"training z 0-{cut - 1}: {pore[:cut].mean():.4f}; held-out z {cut}-{n - 1}: "
        f"{pore[cut:].mean():.4f}"
    )


if __name__ == "__main__":
    main()
