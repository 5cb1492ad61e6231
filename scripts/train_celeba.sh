#!/usr/bin/env bash
# Train the CelebA 64 x 64 x 3 model of the experiments (DCGAN, then the conv encoder with an
# m = 128 code, the preprint's compressed-sensing size) with the project's own `genc train`.
# The weights are NOT committed: CelebA's licence is non-commercial research use only.
# Data: ../shared/data/celeba_aligned_9k (ids 1..8000 train, 8001..9000 test: test_size=1000).
# Resumable: rerun the same command after an interruption and it continues from the last
# checkpoint. Measured with OMP_NUM_THREADS=1 and another training on the second core:
# GAN 3000 steps in 2707 s, encoder 1000 steps in 1619 s; more steps would help both.
# Usage: bash scripts/train_celeba.sh [RUN_DIR] [DATA_DIR]
set -euo pipefail
run=${1:-runs/celeba64_w32}
data=${2:-../shared/data/celeba_aligned_9k}
genc=${GENC:-genc}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
[ -d "$data" ] || { echo "no CelebA folder at $data (see ../shared/data/README.md)" >&2; exit 2; }
opts=(--data folder --data-opt "root=$data" --data-opt size=64 --data-opt test_size=1000
      --data-opt cache=true)

start=$(date +%s)
$genc train gan "${opts[@]}" --out "$run" --arch dcgan --latent-dim 128 --width ${WIDTH:-32} \
    --steps ${GAN_STEPS:-3000} --batch-size 64 --checkpoint-every 250 --sample-every 250 \
    --seed 0 --resume
gan_done=$(date +%s)
$genc train encoder "${opts[@]}" --model "$run" --m 128 --width 32 --real-fraction 0.5 \
    --steps ${ENCODER_STEPS:-1000} --batch-size 64 --seed 0 --resume
end=$(date +%s)
echo "GAN: $((gan_done - start)) s, encoder: $((end - gan_done)) s (this invocation)" \
    | tee -a "$run"/train_time.txt
