"""Named models: the ones that ship inside the package, looked up by name from any folder.

``mnist5k`` (28 x 28 digits, made by ``scripts/train_mnist5k.sh``) and ``berea64`` (64 x 64
patches of segmented Berea sandstone micro-CT slices, ``scripts/train_berea64.sh``) live in
``generative_encoder/weights/``, so a wheel install carries them too; each folder's ``MODEL.md``
is its model card. ``celeba64`` (64 x 64 CelebA faces, ``scripts/train_celeba64.sh``) lives
there in a source checkout only: CelebA's terms allow non-commercial research use alone, which
the package's MIT licence cannot pass on, so ``pyproject.toml`` keeps it out of the wheel.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..errors import CheckpointError
from .checkpoints import ModelBundle, load_model

SHIPPED_MODELS = {
    "mnist5k": "weights/mnist5k",
    "berea64": "weights/berea64",
    "celeba64": "weights/celeba64",
}
SOURCE_ONLY = {"celeba64"}  # named models that the wheel leaves out (data licence)


def shipped_model_dir(name: str = "mnist5k") -> Path:
    """The folder of the shipped model ``name``; CheckpointError when this install lacks it."""
    if name not in SHIPPED_MODELS:
        raise CheckpointError(f"no shipped model {name!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    folder = _folder(name)
    if not (folder / "model.json").is_file():
        why = (
            "it is trained on CelebA (non-commercial research use only) and stays out of the "
            "wheel; install from a source checkout (pip install -e .)"
            if name in SOURCE_ONLY
            else "reinstall the package"
        )
        raise CheckpointError(
            f"model {name!r} is not in this install: {why}, or train it with "
            f"scripts/train_{name}.sh and pass its folder as --model"
        )
    return folder


def installed_models() -> list[str]:
    """The named models this install holds."""
    return [name for name in SHIPPED_MODELS if (_folder(name) / "model.json").is_file()]


def _folder(name: str) -> Path:
    return Path(str(files("generative_encoder") / SHIPPED_MODELS[name]))


def shipped_model(name: str = "mnist5k", device: str = "cpu") -> ModelBundle:
    """The shipped model ``name`` (generator, discriminator, encoder, decoder)."""
    return load_model(shipped_model_dir(name), device)


def resolve_model(name_or_dir: str, device: str = "cpu") -> ModelBundle:
    """A model folder, or the name of a shipped model (``mnist5k``) when no such folder exists."""
    if name_or_dir in SHIPPED_MODELS and not Path(name_or_dir).exists():
        return shipped_model(name_or_dir, device)
    return load_model(name_or_dir, device)
