"""Quality of a digit GAN: the fraction of 1000 generator samples that a CNN trained on
mnist5k's labels puts in one class with probability >= 0.9, beside the same fraction for the 500
real test digits, and the balance of the samples' classes (a collapsed generator that draws one
confident digit would pass the first number alone).

Usage: python scripts/check_mnist_gan.py MODEL_DIR [--classifier DIR] [--truncation PSI]"""

import argparse
import time
from pathlib import Path

import torch

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.io.checkpoints import load_model, load_network
from generative_encoder.models.priors import latent_parts
from generative_encoder.training.classifier import (
    class_balance,
    confident_fraction,
    train_classifier,
)

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument(
    "--classifier",
    default=None,
    help="folder with classifier.safetensors: reuse it (else train one and save it here)",
)
parser.add_argument("--n", type=int, default=1000)
parser.add_argument(
    "--truncation",
    type=float,
    default=1.0,
    help="scale the latents by this factor (the truncation trick; 1 = G's own prior)",
)
args = parser.parse_args()

t0 = time.perf_counter()
if args.classifier and (Path(args.classifier) / "classifier.json").exists():
    classifier = load_network(args.classifier, "classifier")
else:
    classifier = train_classifier(get_dataset("mnist5k", "train"), args.classifier)
test = get_dataset("mnist5k", "test")
real = stack_images(test, range(len(test)))
labels = torch.tensor([test[i][1] for i in range(len(test))])
frac_real, pred = confident_fraction(classifier, real)
G = load_model(args.model).generator
with torch.no_grad():
    z = G.sample_latent(args.n, torch.Generator().manual_seed(123))
    samples = G(args.truncation * z)
frac_fake, pred_fake = confident_fraction(classifier, samples)
print(f"classifier test accuracy: {(pred == labels).float().mean().item():.4f}")
print(f"confident (p >= 0.9) real test digits: {frac_real:.4f} of {len(real)}")
print(
    f"confident (p >= 0.9) generator samples (truncation {args.truncation}): "
    f"{frac_fake:.4f} of {args.n}"
)
print(f"class histogram of samples: {torch.bincount(pred_fake, minlength=10).tolist()}")
print(
    f"class balance (histogram entropy / log 10; 1 = uniform, 0 = one class): samples "
    f"{class_balance(pred_fake, 10):.3f}, real test digits {class_balance(pred, 10):.3f}"
)
n_cat = latent_parts(G.latent_dist)[1]
if n_cat:  # InfoGAN / AC-GAN: does a sample's latent category say which digit it is?
    agree = (z[:, -n_cat:].argmax(1) == pred_fake).float().mean().item()
    print(f"samples whose predicted digit is their latent category: {agree:.4f}")
print(f"({time.perf_counter() - t0:.0f} s)")
