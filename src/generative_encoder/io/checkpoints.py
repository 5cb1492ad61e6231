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
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..devices import check_device
from ..errors import CheckpointError, ConfigError
from ..models.families import EXTRA_NETWORK_NAMES, FAMILIES
from ..models.layers import IMAGE_SIZES
from ..models.priors import LatentGenerator
from ..models.quantizer import KINDS as QUANTIZER_KINDS
from ..models.quantizer import CodeQuantizer, Quantizer, TransformQuantizer
from ..models.registry import NETWORKS
from ..registry import annotation_name, matches_annotation
from .files import atomic_path

NETWORK_FORMAT = "generative-encoder/network"
MODEL_FORMAT = "generative-encoder/model"
FORMAT_VERSION = 1
NETWORK_NAMES = ("generator", "discriminator", "encoder", "decoder")
# plug-and-play's denoiser (``genc train denoiser``), besides the encoder families' networks
DENOISER_NAME = "denoiser"
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
    except (ValueError, RecursionError) as e:  # bad syntax or UTF-8, a 5000-digit int, [[[[...
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
    """Rebuild ``folder/name`` from its JSON and load its weights (eval mode, on ``device``).

    Checked before any weight is read: the JSON (:func:`plan_network`) and the tensor names,
    shapes and dtypes in the ``.safetensors`` header against those of the network it describes;
    after: every floating tensor is finite (:func:`check_loaded`). Float16 weights are converted
    to the network's float32.
    """
    where = Path(folder) / f"{name}.json"
    return _load_planned(Path(folder), name, plan_network(read_json(where), where), device)


# Values a network JSON may give each argument, whatever the architecture (a range or the
# allowed values); the constructors refine them (e.g. an encoder's depth by the image size).
KWARG_VALUES: dict[str, range | tuple] = {
    "channels": (1, 3),
    "image_size": IMAGE_SIZES,
    "width": range(1, 4097),
    "latent_dim": range(1, 65537),
    "code_dim": range(1, 65537),
    "hidden": range(0, 65537),
    "refine": range(0, 33),
    "n_categories": range(0, 4097),
    "n_classes": range(1, 65537),
    "depth": range(1, 8),
    "encoder_depth": range(1, 8),
    "blocks": range(1, 9),
}
MAX_PARAMETERS = 2**28  # numbers in a network's state dict: 1 GiB of float32
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
INT_DTYPES = ("I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64")


def plan_network(config: dict, where: Path, archs: tuple[str, ...] | None = None) -> nn.Module:
    """Validate a network JSON config and build its network on the ``meta`` device (shapes and
    dtypes only, no memory). ``archs``: the architectures allowed (the file's role).

    Checked: format and version; ``arch`` registered (and in ``archs``); every kwarg known, of the
    constructor's annotated type and in :data:`KWARG_VALUES`; the constructor's own checks; at
    most :data:`MAX_PARAMETERS` numbers. Each failure is one CheckpointError naming ``where``.
    """
    if config.get("format") != NETWORK_FORMAT:
        raise CheckpointError(
            f"{where}: 'format' must be {NETWORK_FORMAT!r}, got {_short(config.get('format'))}"
        )
    if config.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{where}: unsupported version {_short(config.get('version'))}")
    arch, kwargs = config.get("arch"), config.get("kwargs")
    if not isinstance(arch, str) or arch not in NETWORKS:
        raise CheckpointError(
            f"{where}: unknown architecture {_short(arch)}; known: {', '.join(NETWORKS.names())}"
        )
    if archs is not None and arch not in archs:
        raise CheckpointError(
            f"{where}: 'arch' must be one of {', '.join(archs)} for this file, got {arch!r}"
        )
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{where}: 'kwargs' must be an object, got {type(kwargs).__name__}")
    builder = NETWORKS.get(arch)
    try:
        inspect.signature(builder).bind(**kwargs)
    except TypeError as e:
        raise CheckpointError(f"{where}: bad kwargs for {arch}: {e}") from None
    hints = typing.get_type_hints(builder.__init__)
    for key, value in kwargs.items():
        if key in hints and not matches_annotation(value, hints[key]):
            raise CheckpointError(
                f"{where}: kwarg {key!r} must be {annotation_name(hints[key])}, got {_short(value)}"
            )
        allowed = KWARG_VALUES.get(key)
        if allowed is not None and isinstance(value, int) and value not in allowed:
            what = (
                f"in {allowed.start}..{allowed.stop - 1}"
                if isinstance(allowed, range)
                else f"one of {allowed}"
            )
            raise CheckpointError(f"{where}: kwarg {key!r} must be {what}, got {_short(value)}")
    try:
        with torch.device("meta"):
            plan = builder(**kwargs)
    except ConfigError as e:
        raise CheckpointError(f"{where}: bad kwargs for {arch}: {e}") from None
    n = sum(t.numel() for t in plan.state_dict().values())
    if n > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where}: kwargs {kwargs} make a {arch} of {n:,} numbers, more than the "
            f"{MAX_PARAMETERS:,} a checkpoint may hold"
        )
    return plan


def build_from_config(config: dict, where: Path) -> nn.Module:
    """Validate a network JSON config (:func:`plan_network`) and build the (untrained) network
    it describes, on the CPU."""
    plan = plan_network(config, where)
    return NETWORKS.get(plan.arch)(**plan.kwargs)


def check_header(path: Path, plan: nn.Module) -> None:
    """Compare the tensors in the header of the safetensors file ``path`` (names, shapes, dtypes:
    floating where the network has floats, integer where it has integers) with those of the
    network ``plan`` (any device), without reading the data."""
    refuse_pickle(path)
    if not path.is_file():
        raise CheckpointError(f"missing file {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = {
                k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()
            }
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable .safetensors file: {e}") from None
    unfit = f"{path} does not fit its JSON config"
    expected = plan.state_dict()
    for key, tensor in expected.items():
        if key not in header:
            raise CheckpointError(f"{unfit}: tensor {key!r} of {type(plan).__name__} is missing")
        shape, dtype = header[key]
        if shape != tuple(tensor.shape):
            raise CheckpointError(
                f"{unfit}: tensor {key!r} is {shape} in the file, "
                f"{tuple(tensor.shape)} in {type(plan).__name__}"
            )
        kinds = FLOAT_DTYPES if tensor.is_floating_point() else INT_DTYPES
        if dtype not in kinds:
            raise CheckpointError(
                f"{unfit}: tensor {key!r} is {dtype}; "
                f"{type(plan).__name__} needs {' or '.join(kinds)}"
            )
    extra = [k for k in header if k not in expected]
    if extra:
        raise CheckpointError(
            f"{unfit}: unexpected tensor {extra[0]!r}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )


def check_loaded(net: nn.Module, path: Path) -> None:
    """Refuse a loaded network with a NaN or infinite floating tensor, a BatchNorm with a
    negative running variance, or a progressive network's stage or alpha out of range; the one
    line names ``path`` and the first bad tensor."""
    for key, tensor in net.state_dict().items():
        if tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(
                    f"{path}: tensor {key!r} has {bad} NaN or infinite value(s) of {tensor.numel()}"
                )
    for name, module in net.named_modules():
        var = getattr(module, "running_var", None)
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and var is not None:
            if (var < 0).any():
                raise CheckpointError(
                    f"{path}: tensor {name + '.running_var'!r} has negative values (a variance)"
                )
        if hasattr(module, "set_progress"):
            try:
                module.set_progress(int(module.stage), float(module.alpha))
            except ConfigError as e:
                prefix = f"{name}." if name else ""
                raise CheckpointError(
                    f"{path}: tensors {prefix + 'stage'!r}, {prefix + 'alpha'!r}: {e}"
                ) from None


def _load_planned(
    folder: Path, name: str, plan: nn.Module, device: torch.device | str
) -> nn.Module:
    """Load ``folder/name.safetensors`` into a CPU network of ``plan``'s architecture and
    kwargs, once its header fits ``plan``; checked, in eval mode, on ``device``."""
    path = folder / f"{name}.safetensors"
    check_header(path, plan)
    net = NETWORKS.get(plan.arch)(**plan.kwargs)
    state = load_tensors(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{path} does not fit its JSON config: {' '.join(first[:2])}"
        ) from None
    check_loaded(net, path)
    return net.to(device).eval()


def _short(value: Any, limit: int = 60) -> str:
    """repr of a value from a file, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ModelBundle:
    """The trained networks of one image domain plus the description in ``model.json``.

    ``generator`` maps (N, latent_dim) -> (N, C, S, S) in [0, 1]; ``encoder`` maps images to
    (N, code_dim); ``decoder`` maps codes back; ``discriminator`` maps images to logits (N,).
    Absent networks are None. ``extras`` holds the other encoder families found in the folder
    (``vae_encoder``, ``aegan_decoder``, ...: ``models.families.EXTRA_NETWORK_NAMES``) and the
    plug-and-play ``denoiser``;
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


def role_archs(name: str) -> tuple[str, ...]:
    """The architectures a model folder's network ``name`` may have: a generator (one with a
    latent prior) for ``generator``, a discriminator for ``discriminator``, an encoder for
    ``encoder`` and the families' ``*_encoder``, a decoder for ``decoder`` and ``*_decoder``."""
    if name == "generator":
        return tuple(n for n in NETWORKS.names() if issubclass(NETWORKS.get(n), LatentGenerator))
    if name.endswith("regressor"):
        return ("latent_regressor",)
    if name == DENOISER_NAME:
        return ("drunet",)
    suffix = "_" + next(r for r in ("discriminator", "encoder", "decoder") if name.endswith(r))
    return tuple(n for n in NETWORKS.names() if n.endswith(suffix))


def load_model(folder: str | os.PathLike, device: torch.device | str = "cpu") -> ModelBundle:
    """Load every network present in a model folder (eval mode). Missing folder, missing or
    malformed ``model.json``, or a pickle file instead of a folder raise
    :class:`CheckpointError`.

    Besides each network's own checks (:func:`load_network`), before its weights are read: its
    architecture has the role of its file name (:func:`role_archs`), its image geometry is the
    one of ``model.json``, and so are the generator's latent size and prior; after: each encoder
    family's encoder and decoder agree on ``code_dim``. A device this machine lacks raises
    ConfigError.
    """
    check_device(device)
    folder = Path(folder)
    refuse_pickle(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist (or is not a folder)")
    info = read_json(folder / "model.json")
    if info.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"{folder / 'model.json'}: 'format' must be {MODEL_FORMAT!r}, "
            f"got {_short(info.get('format'))}"
        )
    for key, typ in MODEL_KEYS.items():
        if not isinstance(info.get(key), typ) or isinstance(info.get(key), bool):
            raise CheckpointError(
                f"{folder / 'model.json'}: key {key!r} must be "
                f"{typ.__name__}, got {_short(info.get(key))}"
            )
    nets = {}
    for name in NETWORK_NAMES + EXTRA_NETWORK_NAMES + (DENOISER_NAME,):
        where = folder / f"{name}.json"
        if not where.exists():
            continue
        plan = plan_network(read_json(where), where, role_archs(name))
        shape = (plan.kwargs.get("channels"), plan.kwargs.get("image_size"))
        if shape != (info["channels"], info["image_size"]):
            raise CheckpointError(
                f"{folder}: {name} is for {shape[0]}-channel {shape[1]} px "
                f"images but model.json says {info['channels']}-channel "
                f"{info['image_size']} px"
            )
        if name == "generator":
            for key in ("latent_dim", "latent_dist"):
                if plan.kwargs[key] != info[key]:
                    raise CheckpointError(
                        f"{where}: kwarg {key!r} is {plan.kwargs[key]!r} but model.json says "
                        f"{info[key]!r}"
                    )
        nets[name] = _load_planned(folder, name, plan, device)
    extras = {
        name: nets.pop(name) for name in EXTRA_NETWORK_NAMES + (DENOISER_NAME,) if name in nets
    }
    bundle = ModelBundle(info=info, folder=folder, extras=extras, **nets)
    bundle.require("generator")
    for f in FAMILIES.values():
        regressor = bundle.network(f.regressor)
        if regressor is not None:
            want = bundle.generator.kwargs["latent_dim"]
            if regressor.kwargs["latent_dim"] != want:
                raise CheckpointError(
                    f"{folder / f'{f.regressor}.json'}: kwarg 'latent_dim' is "
                    f"{regressor.kwargs['latent_dim']} but the generator's is {want}"
                )
        encoder = bundle.network(f.encoder) if f.encoder else None
        decoder = bundle.network(f.decoder) if f.decoder else None
        if regressor is not None and encoder is not None:
            if regressor.kwargs["code_dim"] != encoder.kwargs["code_dim"]:
                raise CheckpointError(
                    f"{folder / f'{f.regressor}.json'}: kwarg 'code_dim' is "
                    f"{regressor.kwargs['code_dim']} but {f.encoder}.json's is "
                    f"{encoder.kwargs['code_dim']} (the regressor maps the encoder's codes)"
                )
        if encoder is not None and decoder is not None:
            if encoder.kwargs["code_dim"] != decoder.kwargs["code_dim"]:
                raise CheckpointError(
                    f"{folder / f'{f.decoder}.json'}: kwarg 'code_dim' is "
                    f"{decoder.kwargs['code_dim']} but {f.encoder}.json's is "
                    f"{encoder.kwargs['code_dim']} (the decoder decodes the encoder's codes)"
                )
    return bundle


QUANTIZER_FORMAT = "generative-encoder/quantizer"


def quantizer_name(encoder: str) -> str:
    """File stem of the quantiser of the encoder family ``encoder``: ``codec`` (ge1),
    ``vae_codec``, ``ge0_codec``, ..."""
    return "codec" if encoder == "ge1" else f"{encoder}_codec"


def save_quantizer(folder: str | os.PathLike, name: str, quantizer: Quantizer) -> None:
    """Write ``folder/name.safetensors`` and ``folder/name.json`` for a fitted quantiser."""
    folder = Path(folder)
    save_tensors(folder / f"{name}.safetensors", quantizer.state_dict())
    extra = {"bins": quantizer.bins} if quantizer.kind == "transform" else {}
    write_json(
        folder / f"{name}.json",
        {
            "format": QUANTIZER_FORMAT,
            "version": FORMAT_VERSION,
            "kind": quantizer.kind,
            "bits": list(quantizer.bits),
            "code_dim": quantizer.code_dim,
        }
        | extra,
    )


def load_quantizer(folder: str | os.PathLike, name: str) -> Quantizer:
    """The quantiser ``folder/name`` written by :func:`save_quantizer` (``kind`` uniform when the
    file names none); CheckpointError when it is missing, malformed, not finite, or its
    probability tables are not distributions."""
    where = Path(folder) / f"{name}.json"
    if not where.exists():
        raise CheckpointError(
            f"{Path(folder)} has no {name}.json: fit the codec with `genc train codec`"
        )
    config = read_json(where)
    bits, m = config.get("bits"), config.get("code_dim")
    kind, bins = config.get("kind", "uniform"), config.get("bins")
    if config.get("format") != QUANTIZER_FORMAT or not isinstance(bits, list) or not bits:
        raise CheckpointError(f"{where} is not a quantiser description")
    if not all(type(b) is int and 1 <= b <= 16 for b in bits) or type(m) is not int or m < 1:
        raise CheckpointError(f"{where}: 'bits' must list integers in 1..16 and 'code_dim' be > 0")
    if kind not in QUANTIZER_KINDS:
        raise CheckpointError(f"{where}: unknown quantiser kind {kind!r}")
    if kind == "transform" and not (
        isinstance(bins, list)
        and len(bins) == len(bits)
        and all(type(n) is int and n >= 1 for n in bins)
    ):
        raise CheckpointError(f"{where}: 'bins' must list one bin count >= 1 per rate")
    tensors = load_tensors(Path(folder) / f"{name}.safetensors")
    if kind == "transform":
        expected = {"mean": (m,), "basis": (m, m), "steps": (len(bits),)}
        for b, n in zip(bits, bins):
            expected[f"low_{b}"] = (m,)
            expected[f"centroids_{b}"] = expected[f"probabilities_{b}"] = (m, n)
    else:
        expected = {"lo": (m,), "hi": (m,)}
        for b in bits:
            expected[f"centroids_{b}"] = expected[f"probabilities_{b}"] = (m, 2**b)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if shapes != expected:
        raise CheckpointError(f"{where}: the tensors do not match bits {bits}, code_dim {m}")
    if not all(bool(torch.isfinite(v).all()) for v in tensors.values()):
        raise CheckpointError(f"{where}: the quantiser holds NaN or Inf values")
    if kind == "uniform" and not bool((tensors["hi"] > tensors["lo"]).all()):
        raise CheckpointError(f"{where}: a range has hi <= lo")
    if kind == "transform" and not bool((tensors["steps"] > 0).all()):
        raise CheckpointError(f"{where}: a step size is <= 0")
    for b in bits:
        p = tensors[f"probabilities_{b}"].double()
        if not bool((p > 0).all()) or not torch.allclose(p.sum(1), torch.ones_like(p[:, 0])):
            raise CheckpointError(f"{where}: probabilities_{b} is not a distribution per row")
    if kind == "transform":
        quantizer = TransformQuantizer(
            tensors["mean"], tensors["basis"], tensors["steps"], tuple(bits), bins
        )
        quantizer.load_state_dict({k: v.float() for k, v in tensors.items()})
        return quantizer
    quantizer = CodeQuantizer(tensors["lo"], tensors["hi"], tuple(bits))
    quantizer.load_state_dict({k: v.float() for k, v in tensors.items()})
    return quantizer
