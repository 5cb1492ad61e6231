"""Every seeded random stream of a problem, derived in one place.

A physics built with ``seed`` draws its operator (mask, sensing matrix) and its noise from two
streams of that seed. An image (a file called NAME, or image i of a bench split) gets its own
seeds for simulated noise and for the search's random starts, which depend on the image alone,
not on its batch, shard or neighbours; stochastic clipping redraws from a stream of the problem's
start seed, and an ensemble's further members start from streams of it. Streams are keys of
numpy's SeedSequence, so nearby seeds never overlap.
"""

from __future__ import annotations

import hashlib

import numpy as np

OPERATOR_STREAM = 0  # a physics' operator: masks, sensing matrices
PHYSICS_NOISE_STREAM = 1  # a physics' own noise generator
NOISE_STREAM = 3  # an image's simulated noise
LATENT_STREAM = 4  # an image's random starts
CLIP_STREAM = 5  # a problem's stochastic-clipping redraws (keyed by its start seed)
ATTRIBUTE_STREAM = 6  # LVR-SA's generated problems (keyed by the attribute seed and index)
MEMBER_STREAM = 7  # the starts of an ensemble's members after the first (keyed by the start seed)
HELD_OUT_SEED = 0  # which measured entries latent_weight="auto" holds out
CALIBRATION_SEED = 12345  # the fit flag's calibration samples and their noise


def stream_seed(seed: int, stream: int) -> int:
    """A seed for one independent random stream of ``seed``."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


def member_seed(seed: int, member: int) -> int:
    """The start seed of ensemble member ``member`` (>= 0) of a problem seeded ``seed``: member 0
    is the problem's own run (``seed`` itself), the others independent streams of it."""
    if member == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), MEMBER_STREAM, member]).generate_state(1)[0])


def image_seed(seed: int, name: str, stream: int) -> int:
    """A seed for the input called ``name`` (a file stem, or an image's index as text) in a run
    seeded ``seed``: ``NOISE_STREAM`` (simulated noise) or ``LATENT_STREAM`` (random starts)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return int(np.random.SeedSequence([seed, stream, *words]).generate_state(1)[0])


def image_seeds(seed: int, indices: range, stream: int) -> list[int]:
    """``image_seed`` of each image of a split by its index: an image is measured and solved the
    same way whatever selection of images surrounds it."""
    return [image_seed(seed, str(i), stream) for i in indices]
