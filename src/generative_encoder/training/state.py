"""Resumable training state as safetensors + JSON: module weights, optimizer moments, RNG, step.

Optimizer state dicts mix tensors (moments) and plain values (hyper-parameters); the tensors go
to ``NAME.safetensors`` under flat keys and the rest, as JSON, into that file's header, so resuming
never unpickles. The state is one file written atomically: a run killed at any moment, even while
checkpointing, resumes from the last complete state. ``NAME.json`` repeats the JSON part for
people and tools to read (the step, the config); resuming does not depend on it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, TrainingError
from ..io.checkpoints import load_metadata, load_tensors, read_json, save_tensors, write_json

STATE_KEY = "generative-encoder/state"  # the safetensors header entry holding the JSON part


def save_state(
    folder: Path,
    name: str,
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    rng: torch.Generator,
    config: dict,
    rank_rngs: list[torch.Tensor] | None = None,
) -> None:
    """Write ``folder/name.safetensors`` + ``folder/name.json``: all a run needs to continue.

    rank_rngs: in a distributed run, every rank's generator state (rank 0's first, equal to
    ``rng``'s); each rank resumes its own stream from it."""
    tensors: dict[str, torch.Tensor] = {"rng": rng.get_state()}
    for r, state in enumerate(rank_rngs or []):
        if r > 0:
            tensors[f"rng.rank{r}"] = state
    for mname, module in modules.items():
        tensors.update({f"module.{mname}.{k}": v for k, v in module.state_dict().items()})
    groups = {}
    for oname, opt in optimizers.items():
        sd = opt.state_dict()
        for idx, pstate in sd["state"].items():
            for key, value in pstate.items():
                tensors[f"optim.{oname}.{idx}.{key}"] = torch.as_tensor(value)
        groups[oname] = sd["param_groups"]
    meta = {
        "step": step,
        "param_groups": groups,
        "config": config,
        "world_size": len(rank_rngs) if rank_rngs else 1,
    }
    save_tensors(folder / f"{name}.safetensors", tensors, metadata={STATE_KEY: json.dumps(meta)})
    write_json(folder / f"{name}.json", meta)


def has_state(folder: Path, name: str) -> bool:
    return (folder / f"{name}.safetensors").is_file()


def load_state(
    folder: Path,
    name: str,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    rng: torch.Generator,
    rank: int = 0,
) -> dict:
    """Restore what :func:`save_state` wrote into the given objects; returns the JSON part.

    rank: a distributed run's rank r > 0 restores its own generator state, when the state holds
    one (``rng.rank{r}``); otherwise ``rng`` is left as it is (the caller's seeded stream)."""
    tensors = load_tensors(folder / f"{name}.safetensors")
    header = load_metadata(folder / f"{name}.safetensors").get(STATE_KEY)
    # states written before the header held the JSON part have it in NAME.json only
    meta = json.loads(header) if header is not None else read_json(folder / f"{name}.json")
    try:
        if rank == 0:
            rng.set_state(tensors["rng"])
        elif f"rng.rank{rank}" in tensors:
            rng.set_state(tensors[f"rng.rank{rank}"])
        for mname, module in modules.items():
            prefix = f"module.{mname}."
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
        for oname, opt in optimizers.items():
            prefix = f"optim.{oname}."
            state: dict[int, dict] = {}
            for key, value in tensors.items():
                if key.startswith(prefix):
                    idx, field = key[len(prefix) :].split(".", 1)
                    state.setdefault(int(idx), {})[field] = value
            opt.load_state_dict({"state": state, "param_groups": meta["param_groups"][oname]})
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"cannot resume from {folder / name}: {e}") from None
    for key, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"cannot resume from {folder / name}: {key} holds NaN or Inf")
    return meta


def prepare_run(
    folder: Path,
    name: str,
    model_files: tuple[str, ...],
    data: str,
    *,
    resume: bool,
    overwrite: bool,
) -> None:
    """Refuse a run that would destroy or mix up a trained one, before any work.

    ``name``: the run's state (``gan_state``, ``encoder_state``, ...), whose ``NAME`` prefix also
    names its ``{prefix}_config.json``; ``model_files``: the files the run writes (``generator``,
    ...). Without ``resume`` or ``overwrite`` a folder that holds them or a state is refused;
    ``resume`` with no state to resume from is refused when model files would be overwritten;
    ``resume`` on a run of other data (``data``: the bank's name and content digest, recorded
    as ``data`` in the run's config) is refused."""
    prefix = name.removesuffix("_state")
    present = [f for f in model_files if (folder / f"{f}.safetensors").exists()]
    if has_state(folder, name):
        present.append(f"{name}.safetensors")
    if resume:
        if not has_state(folder, name) and present:
            raise ConfigError(
                f"--resume: {folder} holds {', '.join(present)} but no "
                f"{name}.safetensors to resume from; use --overwrite to train anew"
            )
        config = folder / f"{prefix}_config.json"
        if has_state(folder, name) and config.is_file():
            stored = read_json(config)
            other = (
                stored["data"] != data
                if "data" in stored
                else stored.get("dataset", data.split(":")[0]) != data.split(":")[0]
            )
            if other:
                raise ConfigError(
                    f"--resume: {folder} was trained on other data "
                    f"({stored.get('data', stored.get('dataset'))!r}, not {data!r}); "
                    "use another folder (or --overwrite)"
                )
    elif present and not overwrite:
        raise ConfigError(
            f"{folder} already holds a trained run ({', '.join(present)}); use "
            "--resume to continue it or --overwrite to train anew"
        )


def check_finite(
    step: int, logs: dict[str, float], modules: dict[str, nn.Module] | None = None
) -> None:
    """TrainingError at the first loss (``logs``) or, when given, weight or buffer of ``modules``
    that is NaN or infinite; nothing of that step is written."""
    bad = [k for k, v in logs.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise TrainingError(
            f"training diverged at step {step}: {bad[0]} = {logs[bad[0]]}; the "
            "files of the last checkpoint are kept"
        )
    for mname, module in (modules or {}).items():
        for key, value in module.state_dict().items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise TrainingError(
                    f"training diverged at step {step}: {mname}.{key} holds NaN "
                    "or Inf; the files of the last checkpoint are kept"
                )
