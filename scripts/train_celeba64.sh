#!/usr/bin/env bash
# Train the celeba64 zoo model: 64 x 64 x 3 aligned CelebA faces (../shared/data/celeba_aligned_9k,
# ids 1..8000 train, 8001..9000 held out: test_size=1000). DCGAN width 64, latent 128, with the R1
# penalty (at every step for the first 3500 steps, then lazy: every 16th step, weighted by 16),
# minibatch-stddev and translation DiffAugment (8000 faces is a small set for a GAN), EMA
# generator, 12000 steps; then the conv encoder with an m = 128 code, amortized GE's latent
# regressor, the codec's quantiser and pnp's denoiser. The weights are for non-commercial
# research only (CelebA's terms).
# Resumable: rerun the same command after an interruption and it continues from the last
# checkpoint (every 250 steps), so training can go on over several sessions.
# Usage: bash scripts/train_celeba64.sh [RUN_DIR] [DATA_DIR] [DEVICE]
set -euo pipefail
run=${1:-runs/celeba64}
data=${2:-../shared/data/celeba_aligned_9k}
device=${3:-cpu}
genc=${GENC:-genc}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
[ -d "$data" ] || { echo "no CelebA folder at $data (see ../shared/data/README.md)" >&2; exit 2; }
opts=(--data folder --data-opt "root=$data" --data-opt size=64 --data-opt test_size=1000
      --data-opt cache=true)

gan=(--out "$run" --arch dcgan --latent-dim 128 --width ${WIDTH:-64} --batch-size 64 --r1 1
     --mbstd --augment translation --checkpoint-every 250 --sample-every 1000 --seed 0
     --device "$device" --resume)

start=$(date +%s)
# a run already past a stage's step count resumes there and goes straight on
$genc train gan "${opts[@]}" "${gan[@]}" --steps ${R1_FULL_STEPS:-3500} --r1-every 1
$genc train gan "${opts[@]}" "${gan[@]}" --steps ${GAN_STEPS:-12000} --r1-every ${R1_EVERY:-16}
gan_done=$(date +%s)
$genc train encoder "${opts[@]}" --model "$run" --m 128 --width 48 --real-fraction 0.5 \
    --steps ${ENCODER_STEPS:-2000} --batch-size 64 --seed 0 --device "$device" --resume \
    --regressor-steps ${REGRESSOR_STEPS:-1000} --regressor-batch-size 64 \
    --regressor-real-steps ${REGRESSOR_REAL_STEPS:-0}  # the shipped regressor saw samples only
$genc train codec "${opts[@]}" --model "$run"
$genc train denoiser "${opts[@]}" --model "$run" --steps ${DENOISER_STEPS:-1500} --seed 0 \
    --device "$device" --resume
end=$(date +%s)
echo "GAN: $((gan_done - start)) s, encoder: $((end - gan_done)) s (this invocation)" \
    | tee -a "$run"/train_time.txt
