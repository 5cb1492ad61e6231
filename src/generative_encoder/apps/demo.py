"""The demo benchmark spec: ``genc demo`` restores 16 held-out mnist5k digits under every task
with GE, CSGM, the autoencoder and the task's classical baseline, with the shipped model
(:mod:`generative_encoder.io.zoo`).
"""

from __future__ import annotations

from .bench import BenchSpec, TaskSpec

DEMO_TASKS = (
    TaskSpec("denoise-0.4", "denoise", {"sigma": 0.4}),
    TaskSpec("deblur", "deblur", {"blur_sigma": 1.5, "sigma": 0.01}),
    TaskSpec("superres-x4", "superres", {"factor": 4}),
    TaskSpec("inpaint-block", "inpaint", {"mask": "block"}),
    TaskSpec("inpaint-freeform", "inpaint", {"mask": "freeform"}),
    TaskSpec("cs-m100", "cs", {"m": 100}),
    TaskSpec("encoder-cs", "encoder_cs", {}),
)

# Half the paper's 500 iterations keeps the demo near two minutes on a 2-core CPU; the
# experiments (experiments/mnist_tasks.json) use the paper's settings.
DEMO_STEPS = 250
DEMO_SPEC = BenchSpec(
    data="mnist5k",
    split="test",
    n_images=16,
    tasks=DEMO_TASKS,
    methods=("ge", "csgm", "autoencoder", "baseline"),
    method_options={"ge": {"steps": DEMO_STEPS}, "csgm": {"steps": DEMO_STEPS}},
)
