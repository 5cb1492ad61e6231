"""Checkpoints: ``.safetensors`` weights + JSON configs; nothing is ever unpickled.

A *network file pair* is ``NAME.safetensors`` (the state dict) and ``NAME.json``::

    {"format": "generative-encoder/network", "version": 1,
     "arch": "dcgan_generator", "kwargs": {...}, "meta": {...}}

which :func:`load_network` rebuilds with :func:`generative_encoder.models.build_network`.

A *model folder* holds the networks of one image domain (``generator`` = the EMA weights,
``discriminator``, ``encoder``, ``decoder``) and ``model.json`` describing the domain (dataset,
image size, channels, latent size and distribution, steps, seed, package version).

Every file is written atomically (temporary file in the same folder, then ``os.replace``), so a
crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..errors import CheckpointError, ConfigError
from ..models.families import EXTRA_NETWORK_NAMES
from ..models.registry import NETWORKS
from .files import atomic_path

NETWORK_FORMAT = "generative-encoder/network"
MODEL_FORMAT = "generative-encoder/model"
FORMAT_VERSION = 1
NETWORK_NAMES = ("generator", "discriminator", "encoder", "decoder")
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing file {path}")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(obj).__name__}")
    return obj


def save_tensors(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write a flat dict of tensors (and optional string metadata in the header) as safetensors,
    atomically (tensors are made contiguous)."""
    with atomic_path(path) as tmp:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
            str(tmp),
            metadata=metadata,
        )


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file; refuse pickle-based formats by suffix before touching them."""
    path = Path(path)
    refuse_pickle(path)
    if not path.is_file():
        raise CheckpointError(f"missing file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable .safetensors file: {e}") from None


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata in a safetensors file's header ({} when it has none)."""
    path = Path(path)
    refuse_pickle(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable .safetensors file: {e}") from None


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"refusing to load {path}: {path.suffix} files are pickles that can run code; "
            "generative-encoder reads only .safetensors weights with .json configs"
        )


def save_network(
    folder: str | os.PathLike, name: str, net: nn.Module, meta: dict | None = None
) -> None:
    """Write ``folder/name.safetensors`` and ``folder/name.json`` for a registered network."""
    folder = Path(folder)
    save_tensors(folder / f"{name}.safetensors", net.state_dict())
    write_json(
        folder / f"{name}.json",
        {
            "format": NETWORK_FORMAT,
            "version": FORMAT_VERSION,
            "arch": net.arch,
            "kwargs": net.kwargs,
            "meta": meta or {},
        },
    )


def load_network(
    folder: str | os.PathLike, name: str, device: torch.device | str = "cpu"
) -> nn.Module:
    """Rebuild ``folder/name`` from its JSON and load its weights (eval mode, on ``device``)."""
    folder = Path(folder)
    config = read_json(folder / f"{name}.json")
    net = build_from_config(config, folder / f"{name}.json")
    state = load_tensors(folder / f"{name}.safetensors")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{folder / name}.safetensors does not fit its JSON config: {' '.join(first[:2])}"
        ) from None
    return net.to(device).eval()


def build_from_config(config: dict, where: Path) -> nn.Module:
    """Validate a network JSON config and build the (untrained) network it describes."""
    if config.get("format") != NETWORK_FORMAT:
        raise CheckpointError(
            f"{where}: 'format' must be {NETWORK_FORMAT!r}, got {config.get('format')!r}"
        )
    if config.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{where}: unsupported version {config.get('version')!r}")
    arch, kwargs = config.get("arch"), config.get("kwargs")
    if arch not in NETWORKS:
        raise CheckpointError(
            f"{where}: unknown architecture {arch!r}; known: {', '.join(NETWORKS.names())}"
        )
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{where}: 'kwargs' must be an object, got {type(kwargs).__name__}")
    builder = NETWORKS.get(arch)
    try:
        inspect.signature(builder).bind(**kwargs)
    except TypeError as e:
        raise CheckpointError(f"{where}: bad kwargs for {arch}: {e}") from None
    for key, value in kwargs.items():
        default = inspect.signature(builder).parameters[key].default
        if (
            default is not None
            and default is not inspect.Parameter.empty
            and value is not None
            and type(value) is not type(default)
        ):
            raise CheckpointError(
                f"{where}: kwarg {key!r} must be {type(default).__name__}, got {value!r}"
            )
    try:
        return builder(**kwargs)
    except ConfigError as e:
        raise CheckpointError(f"{where}: {e}") from None


@dataclass
class ModelBundle:
    """The trained networks of one image domain plus the description in ``model.json``.

    ``generator`` maps (N, latent_dim) -> (N, C, S, S) in [0, 1]; ``encoder`` maps images to
    (N, code_dim); ``decoder`` maps codes back; ``discriminator`` maps images to logits (N,).
    Absent networks are None. ``extras`` holds the other encoder families found in the folder
    (``vae_encoder``, ``aegan_decoder``, ...: ``models.families.EXTRA_NETWORK_NAMES``);
    ``network(name)``
    reads either kind.
    """

    info: dict
    generator: nn.Module | None = None
    discriminator: nn.Module | None = None
    encoder: nn.Module | None = None
    decoder: nn.Module | None = None
    folder: Path | None = field(default=None, compare=False)
    extras: dict[str, nn.Module] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.info["channels"], self.info["image_size"], self.info["image_size"])

    def network(self, name: str) -> nn.Module | None:
        """The network ``name`` of the folder (one of NETWORK_NAMES or EXTRA_NETWORK_NAMES)."""
        return getattr(self, name) if name in NETWORK_NAMES else self.extras.get(name)

    def require(self, *names: str) -> None:
        missing = [n for n in names if self.network(n) is None]
        if missing:
            raise CheckpointError(
                f"model folder {self.folder} has no {', '.join(missing)} "
                f"(expected {', '.join(f'{n}.safetensors' for n in missing)}); "
                "train it with `genc train`"
            )

    def to(self, device: torch.device | str) -> "ModelBundle":
        for name in NETWORK_NAMES + tuple(self.extras):
            net = self.network(name)
            if net is not None:
                net.to(device)
        return self


MODEL_KEYS = {
    "dataset": str,
    "image_size": int,
    "channels": int,
    "latent_dim": int,
    "latent_dist": str,
}


def write_model_info(folder: str | os.PathLike, **info: Any) -> dict:
    """Create or update ``folder/model.json`` with the given keys (merged into what is there)."""
    path = Path(folder) / "model.json"
    current = (
        read_json(path) if path.exists() else {"format": MODEL_FORMAT, "version": FORMAT_VERSION}
    )
    current.update(info, package_version=__version__)
    write_json(path, current)
    return current


def load_model(folder: str | os.PathLike, device: torch.device | str = "cpu") -> ModelBundle:
    """Load every network present in a model folder (eval mode). Missing folder, missing or
    malformed ``model.json``, or a pickle file instead of a folder raise
    :class:`CheckpointError`."""
    folder = Path(folder)
    refuse_pickle(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist (or is not a folder)")
    info = read_json(folder / "model.json")
    if info.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"{folder / 'model.json'}: 'format' must be {MODEL_FORMAT!r}, "
            f"got {info.get('format')!r}"
        )
    for key, typ in MODEL_KEYS.items():
        if not isinstance(info.get(key), typ):
            raise CheckpointError(
                f"{folder / 'model.json'}: key {key!r} must be "
                f"{typ.__name__}, got {info.get(key)!r}"
            )
    nets = {
        name: load_network(folder, name, device)
        for name in NETWORK_NAMES + EXTRA_NETWORK_NAMES
        if (folder / f"{name}.json").exists()
    }
    extras = {name: nets.pop(name) for name in EXTRA_NETWORK_NAMES if name in nets}
    bundle = ModelBundle(info=info, folder=folder, extras=extras, **nets)
    bundle.require("generator")
    for name, net in (nets | extras).items():
        shape = (net.kwargs.get("channels"), net.kwargs.get("image_size"))
        if shape != (info["channels"], info["image_size"]):
            raise CheckpointError(
                f"{folder}: {name} is for {shape[0]}-channel {shape[1]} px "
                f"images but model.json says {info['channels']}-channel "
                f"{info['image_size']} px"
            )
    return bundle
