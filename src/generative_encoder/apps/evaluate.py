"""How good is a model as a prior: the Python API behind ``genc evaluate-model``.

For a model and its data set (the training split for the feature network, the test split as the
held-out reference), with ``n`` generated samples and ``n`` held-out images:

- **representation error**: mean MSE of the best fit G(z*) to ``n_fit`` clean held-out images
  (CSGM with A = identity: ``steps`` Adam steps, ``restarts`` starts, CSGM's default lambda);
  what no restoration by the generator can beat;
- **encoder reconstruction MSE** of the ge1 autoencoder on held-out images and on samples;
- **domain FID** of samples against held-out images beside the real-vs-real FID of ``n``
  training images against the same held-out ones (features of the project's domain classifier:
  the data set's labels when it has them, else the four 90-degree rotations);
- for binary (segmented) data such as rock: porosity, S2(r), specific perimeter and Euler
  density of samples against held-out images and against ``n`` training images, and of the
  training images against the held-out ones: a real-vs-real reference, as for FID, that says
  how far the held-out part of a heterogeneous sample lies from anything a model trained on the
  rest can learn (:mod:`~generative_encoder.eval.porous`).

Writes OUT/evaluation.json, evaluation.md, samples.png (samples above held-out images) and, for
rock, s2.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..data import stack_images
from ..errors import ConfigError
from ..eval.attributes import feature_training_set
from ..eval.fid import FIDScorer, classifier_features, domain_classifier
from ..eval.porous import compare_sets
from ..io.checkpoints import ModelBundle, write_json
from ..io.files import ensure_folder
from ..io.images import save_grid
from ..methods import METHODS
from ..physics.seeds import LATENT_STREAM, image_seeds
from ..physics.tasks import make_physics
from ..solve import rowwise

EVALUATION_SEED = 2024  # which held-out images and which samples


def pick(dataset: Dataset, n: int, seed: int = EVALUATION_SEED) -> list[int]:
    """n indices of ``dataset`` drawn without replacement (all of them when it is smaller)."""
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(len(dataset), size=min(n, len(dataset)), replace=False).tolist())


@torch.no_grad()
def samples(model: ModelBundle, n: int, seed: int = EVALUATION_SEED) -> Tensor:
    g = model.generator
    z = g.sample_latent(n, torch.Generator().manual_seed(seed))
    return torch.cat([g(b) for b in z.split(256)]).clamp(0, 1)


@torch.no_grad()
def reconstruction_mse(model: ModelBundle, x: Tensor) -> float:
    out = torch.cat([rowwise(lambda b: model.decoder(model.encoder(b)), b) for b in x.split(256)])
    return float(((out.clamp(0, 1) - x) ** 2).mean())


def representation_error(
    model: ModelBundle, x: Tensor, steps: int, restarts: int, seed: int = EVALUATION_SEED
) -> Tensor:
    """(N,) MSE of CSGM's best fit G(z*) to clean images x (A = identity, no noise)."""
    physics = make_physics("denoise", model.image_shape, sigma=0.0)
    csgm = METHODS.build("csgm", model=model, steps=steps, restarts=restarts)
    seeds = image_seeds(seed, range(len(x)), LATENT_STREAM)
    fit = csgm.solve(x, physics, seeds=seeds).x.detach()
    return ((fit - x) ** 2).mean((1, 2, 3))


def is_binary(x: Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def evaluate_model(
    model: ModelBundle,
    train_set: Dataset,
    test_set: Dataset,
    out: str | Path,
    *,
    n: int = 500,
    n_fit: int = 100,
    steps: int = 500,
    restarts: int = 2,
    fid: bool = True,
    classifier_steps: int = 1500,
    on_stage: Callable[[str], None] | None = None,
) -> dict:
    """Every measure above, written into ``out``; returns what evaluation.json holds."""
    if n < 2 or n_fit < 1:
        raise ConfigError(f"n must be >= 2 and n_fit >= 1, got n={n}, n_fit={n_fit}")
    if tuple(test_set[0][0].shape) != model.image_shape:
        raise ConfigError(
            f"the data's images are {tuple(test_set[0][0].shape)}, the model's "
            f"{model.image_shape}: evaluate it on the data it was trained on"
        )
    out = ensure_folder(out)
    stage = on_stage or (lambda _: None)
    real = stack_images(test_set, pick(test_set, n))
    fake = samples(model, len(real))
    report: dict = {"n": len(real), "n_fit": min(n_fit, len(real)), "steps": steps}
    save_grid(out / "samples.png", [fake[i : i + 8] for i in range(0, 32, 8)] + [real[:8]])

    if model.encoder is not None and model.decoder is not None:
        stage("encoder reconstruction")
        report["encoder_mse_real"] = reconstruction_mse(model, real)
        report["encoder_mse_generated"] = reconstruction_mse(model, fake)

    stage(f"representation error ({report['n_fit']} images x {steps} steps)")
    errors = representation_error(model, real[: report["n_fit"]], steps, restarts)
    report["representation_mse"] = float(errors.mean())
    report["representation_mse_std"] = float(errors.std()) if len(errors) > 1 else 0.0

    rock = is_binary(real)
    # n training images: the real-vs-real reference of FID and of the porous measures
    train_real = stack_images(train_set, pick(train_set, len(real))) if fid or rock else None
    if fid:
        stage("domain classifier for FID")
        features_set = feature_training_set(train_set)
        classifier = domain_classifier(features_set, out / "classifier", steps=classifier_steps)
        scorer = FIDScorer(classifier_features(classifier), real)
        report["fid_features"] = "labels" if features_set is train_set else "rotation"
        report["fid_generated"] = scorer.score(fake)
        report["fid_real_vs_real"] = scorer.score(train_real)

    if rock:
        # beside samples vs held-out, the two references that say what a miss means: samples vs
        # the training images (the generator's own fit) and training vs held-out images (how far
        # the held-out part of a heterogeneous sample is from what any model could learn)
        stage("porous-media measures")
        report["rock"] = compare_sets(real, fake)
        report["rock_training"] = compare_sets(train_real, fake)
        report["rock_training_vs_held_out"] = compare_sets(real, train_real)
        plot_s2(out / "s2.png", report)

    write_json(out / "evaluation.json", report)
    (out / "evaluation.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    lines = [f"# Model evaluation ({report['n']} held-out images, {report['n']} samples)", ""]
    lines += ["| measure | value |", "| --- | --- |"]
    if "encoder_mse_real" in report:
        lines.append(f"| encoder reconstruction MSE, held-out | {report['encoder_mse_real']:.5f} |")
        lines.append(
            f"| encoder reconstruction MSE, samples | {report['encoder_mse_generated']:.5f} |"
        )
    lines.append(
        f"| representation MSE (CSGM, A = I, {report['n_fit']} images, {report['steps']} "
        f"steps) | {report['representation_mse']:.5f} +- {report['representation_mse_std']:.5f} |"
    )
    if "fid_generated" in report:
        lines.append(f"| domain FID, samples vs held-out | {report['fid_generated']:.2f} |")
        lines.append(f"| domain FID, training vs held-out | {report['fid_real_vs_real']:.2f} |")
    if "rock" in report:
        held_out, training = report["rock"], report["rock_training"]
        reference = report["rock_training_vs_held_out"]
        lines += [
            "",
            "| porous-media measure | held-out | training | samples |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name in ("porosity", "specific_perimeter", "euler_density"):
            lines.append(
                f"| {name} | {held_out[name]['real']:.4f} | {training[name]['real']:.4f} | "
                f"{held_out[name]['generated']:.4f} |"
            )
        r_max = len(held_out["s2_real"]) - 1
        lines.append(
            f"| S2(r), r <= {r_max}: largest relative difference from held-out | | "
            f"{reference['s2_max_relative_error']:.3f} | {held_out['s2_max_relative_error']:.3f} |"
        )
        lines.append(
            f"| S2(r), r <= {r_max}: largest relative difference from training | | | "
            f"{training['s2_max_relative_error']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot_s2(path: Path, report: dict) -> None:
    """S2(r) of the held-out images, the training images and the samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    r = range(len(report["rock"]["s2_real"]))
    ax.plot(r, report["rock"]["s2_real"], "o-", ms=3, label="held-out")
    ax.plot(r, report["rock_training"]["s2_real"], "^:", ms=3, label="training")
    ax.plot(r, report["rock"]["s2_generated"], "s--", ms=3, label="generated")
    ax.set_xlabel("r (pixels)")
    ax.set_ylabel("S2(r)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
