"""Latent vector recovery (Lipton & Tripathi; Tripathi, Lipton & Nguyen), on the one engine.

For generators trained with latents uniform in [-1, 1]^d:

- ``lvr``: z* = argmin ||A(G(z)) - y||^2 (no prior term), with the seed's box strategy as the
  ``clip`` option: "none" (no clipping), "project" (projected gradient: clamp to the box after
  every step) or "stochastic" (stochastic clipping, the default: components that left the box are
  redrawn uniformly inside it). x_hat = G(z*).
- ``lvr_sa``: LVR plus the *sharpness attribute* of the noise level sigma,
  s = mean(true z) - mean(recovered z) over N generated images corrupted by Gaussian noise sigma
  and recovered by the same LVR. At restore time x_hat = G(clamp(z* + s, -1, 1)).

The attribute is computed from generated images only (never from the images being restored), once
per (generator weights, sigma, N, seed, solver settings), and stored as ``sharpness_<key>.
safetensors`` (the (d,) vector) + ``.json`` (what it was made from) in ``<model folder>/sharpness``
when that folder is writable, else in ``$GENC_CACHE/<model name>`` (default
``~/.cache/generative-encoder/<model name>``). Later calls read it back; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from deepinv.physics import Denoising, GaussianNoise, Physics
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from ..io.checkpoints import ModelBundle, load_tensors, read_json, save_tensors, write_json
from ..models.priors import sample_latent
from ..physics import make_physics
from ..physics.consistency import make_consistent
from ..physics.seeds import ATTRIBUTE_STREAM, stream_seed
from ..solve import SearchResult, SolveConfig, expand_targets, image_fidelity, rowwise
from .latent import LatentSearch
from .registry import METHODS

LVR_CLIPS = {"none": None, "project": "project", "stochastic": "stochastic"}
SHARPNESS_N = 256  # generated images per attribute
SHARPNESS_CHUNK = 128  # of them solved at once
CACHE_ENV = "GENC_CACHE"
ATTRIBUTE_FORMAT = "generative-encoder/sharpness-attribute"


def _lvr_clip(clip: str | None) -> str | None:
    if clip is None:
        return None
    if clip not in LVR_CLIPS:
        raise ConfigError(f"clip must be one of {', '.join(LVR_CLIPS)}, got {clip!r}")
    return LVR_CLIPS[clip]


@METHODS.register("lvr")
class LVR(LatentSearch):
    """Latent vector recovery: z* = argmin ||A(G(z)) - y||^2 over uniform latents, x_hat = G(z*).

    clip: "none", "project" or "stochastic" (default). latent_weight: an optional lambda ||z||^2
    (0 by default, as in the seed). Other options: the engine's (``steps``, ``lr``, ...).
    """

    name = "lvr"

    def __init__(
        self,
        model: ModelBundle,
        config: SolveConfig | None = None,
        latent_weight: float = 0.0,
        clip: str | None = "stochastic",
        **config_overrides,
    ):
        model.require("generator")
        dist = model.generator.latent_dist
        if dist != "uniform":
            raise ConfigError(
                f"method {self.name!r} needs a generator trained with uniform "
                f"latents in [-1, 1] (genc train gan --latent-dist uniform); this "
                f"model's latents are {dist!r}"
            )
        super().__init__(
            model, config, latent_weight=latent_weight, clip=_lvr_clip(clip), **config_overrides
        )

    def data_term(self, y, physics, restarts):
        return image_fidelity(physics.A, expand_targets(y, restarts)), []


@METHODS.register("lvr_sa")
class LVRSharpness(LVR):
    """LVR plus the sharpness attribute of the physics' Gaussian noise level (see the module).

    sigma: the noise level of the attribute; None reads the ``Denoising`` physics' Gaussian sigma.
    n_attribute: generated images N the attribute averages over. attribute_seed: seeds their
    latents and noise. cache: folder for attribute files (default: see the module).
    """

    name = "lvr_sa"

    def __init__(
        self,
        model: ModelBundle,
        config: SolveConfig | None = None,
        latent_weight: float = 0.0,
        clip: str | None = "stochastic",
        sigma: float | None = None,
        n_attribute: int = SHARPNESS_N,
        attribute_seed: int = 0,
        cache: str | None = None,
        **config_overrides,
    ):
        super().__init__(model, config, latent_weight=latent_weight, clip=clip, **config_overrides)
        if sigma is not None and not sigma >= 0:
            raise ConfigError(f"sigma must be >= 0, got {sigma}")
        if n_attribute < 1:
            raise ConfigError(f"n_attribute must be >= 1, got {n_attribute}")
        self.sigma, self.n_attribute, self.attribute_seed = sigma, n_attribute, attribute_seed
        self.cache = None if cache is None else Path(cache)
        self._attributes: dict[float, Tensor] = {}

    def check_physics(self, physics: Physics) -> None:
        if self.sigma is None:
            _gaussian_sigma(physics)

    def finish(self, result: SearchResult, y: Tensor, physics: Physics) -> Tensor:
        """G(clamp(z* + s, -1, 1)), s the sharpness attribute of the noise level."""
        sigma = self.sigma if self.sigma is not None else _gaussian_sigma(physics)
        s = self.sharpness_attribute(sigma).to(result.z)  # (d,)
        with torch.no_grad():
            x = rowwise(self.model.generator, (result.z + s).clamp(-1, 1))
        return make_consistent(x, y, physics, self.consistency)

    def sharpness_attribute(self, sigma: float) -> Tensor:
        """The (d,) attribute for noise level sigma: read from its file, else computed and saved."""
        sigma = float(sigma)
        if sigma in self._attributes:
            return self._attributes[sigma]
        record = self._record(sigma)
        key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
        attribute = None
        for folder in self._folders():
            path = folder / f"sharpness_{key}.safetensors"
            if path.is_file() and (folder / f"sharpness_{key}.json").is_file():
                try:
                    if read_json(folder / f"sharpness_{key}.json").get("record") == record:
                        attribute = load_tensors(path)["attribute"]
                        break
                except (CheckpointError, KeyError):
                    pass  # unreadable or foreign: computed again below and overwritten
        if attribute is None:
            attribute = self.compute_attribute(sigma)
            self._save(key, record, attribute)
        self._attributes[sigma] = attribute
        return attribute

    def compute_attribute(self, sigma: float) -> Tensor:
        """mean(true z) - mean(LVR-recovered z) over N generated images at noise sigma; (d,)."""
        generator, d = self.model.generator, self.model.generator.latent_dim
        rng = torch.Generator().manual_seed(self.attribute_seed)
        z_true = sample_latent(self.n_attribute, d, generator.latent_dist, rng)  # (N, d)
        physics = make_physics(
            "denoise", self.model.image_shape, sigma=sigma, seed=self.attribute_seed
        )
        param = next(generator.parameters())
        physics = physics.to(param.device)
        recovered = []
        for start in range(0, self.n_attribute, SHARPNESS_CHUNK):
            chunk = z_true[start : start + SHARPNESS_CHUNK].to(param)
            with torch.no_grad():
                y = physics(generator(chunk))
            seeds = [
                stream_seed(self.attribute_seed * self.n_attribute + start + j, ATTRIBUTE_STREAM)
                for j in range(len(chunk))
            ]
            search = self._search(y, physics, self.latent_weight, seeds)  # plain LVR
            recovered.append(search.z.detach().cpu())
        z_rec = torch.cat(recovered)  # (N, d)
        return (z_true.mean(0) - z_rec.mean(0)).float()

    def _record(self, sigma: float) -> dict:
        """Everything the attribute depends on (compared on reading)."""
        state = self.model.generator.state_dict()
        digest = hashlib.sha256()
        for name in sorted(state):
            digest.update(name.encode())
            digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
        return {
            "generator_sha256": digest.hexdigest(),
            "sigma": sigma,
            "n": self.n_attribute,
            "seed": self.attribute_seed,
            "latent_weight": self.latent_weight,
            "solver": json.loads(json.dumps(asdict(self.config))),
        }

    def _folders(self) -> list[Path]:
        """Where attribute files are looked for, in order; the first writable one gets new ones."""
        if self.cache is not None:
            return [self.cache]
        folders = []
        if self.model.folder is not None:
            folders.append(Path(self.model.folder) / "sharpness")
        name = Path(self.model.folder).name if self.model.folder is not None else "unnamed"
        root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "generative-encoder"
        folders.append(Path(root) / name)
        return folders

    def _save(self, key: str, record: dict, attribute: Tensor) -> None:
        for folder in self._folders():
            try:
                save_tensors(folder / f"sharpness_{key}.safetensors", {"attribute": attribute})
                write_json(
                    folder / f"sharpness_{key}.json",
                    {"format": ATTRIBUTE_FORMAT, "record": record, "norm": float(attribute.norm())},
                )
                return
            except OSError:
                continue  # read-only model folder: try the cache
        # nowhere writable: the attribute is kept in memory for this method object only


def _gaussian_sigma(physics: Physics) -> float:
    noise = getattr(physics, "noise_model", None)
    if not isinstance(physics, Denoising) or not isinstance(noise, GaussianNoise):
        raise ConfigError(
            "method 'lvr_sa' applies to denoising with Gaussian noise (its "
            f"attribute is made at a Gaussian sigma), got {type(physics).__name__}"
            " physics; or give the option sigma"
        )
    sigma = float(torch.as_tensor(noise.sigma).flatten()[0])
    return float(f"{sigma:.6g}")  # the float32 buffer's 0.20000000298 is the 0.2 it was made with
