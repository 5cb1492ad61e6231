#!/usr/bin/env bash
# Train the berea64 zoo model: 64 x 64 patches of the segmented Berea sandstone micro-CT volume
# (../shared/data/rock/berea.zip), cut from slices along all three axes of its first three
# quarters along z (z-slices 300..399 are held out: no training patch touches them), DCGAN with
# the R1 penalty (without it this binary data collapsed at latent 64), then the conv encoder,
# amortized GE's latent regressor, the codec's quantiser and plug-and-play's denoiser.
# Resumable: rerun the same command after an interruption and it continues from the last
# checkpoint (every 250 steps). Usage: bash scripts/train_berea64.sh [RUN_DIR] [ZIP] [DEVICE]
set -euo pipefail
run=${1:-runs/berea64}
data=${2:-../shared/data/rock/berea.zip}
device=${3:-cpu}
genc=${GENC:-genc}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
[ -f "$data" ] || { echo "no Berea volume at $data (see ../shared/data/README.md)" >&2; exit 2; }
opts=(--data rock --data-opt "path=$data" --data-opt patch=64 --data-opt stride=32
      --data-opt test_fraction=0.25 --data-opt all_axes=true)

start=$(date +%s)
$genc train gan "${opts[@]}" --out "$run" --arch dcgan --latent-dim 128 --width ${WIDTH:-48} \
    --steps ${GAN_STEPS:-5000} --batch-size 64 --r1 1 --checkpoint-every 250 \
    --sample-every 500 --seed 0 --device "$device" --resume
gan_done=$(date +%s)
$genc train encoder "${opts[@]}" --model "$run" --m 128 --width 32 --real-fraction 0.5 \
    --steps ${ENCODER_STEPS:-2000} --batch-size 64 --seed 0 --device "$device" --resume \
    --regressor-steps ${REGRESSOR_STEPS:-1000} --regressor-batch-size 64 \
    --regressor-real-steps ${REGRESSOR_REAL_STEPS:-0}  # the shipped regressor saw samples only
$genc train codec "${opts[@]}" --model "$run"
$genc train denoiser "${opts[@]}" --model "$run" --steps ${DENOISER_STEPS:-1500} --seed 0 \
    --device "$device" --resume
end=$(date +%s)
echo "GAN: $((gan_done - start)) s, encoder: $((end - gan_done)) s (this invocation)" \
    | tee -a "$run"/train_time.txt
# ship: a float16 copy into the package, then the codec fitted again on the shipped encoder
py=${PYTHON:-$(dirname "$(command -v "$genc")")/python}
dest=src/generative_encoder/weights/berea64
"$py" scripts/ship_model.py "$run" "$dest"
$genc train codec "${opts[@]}" --model "$dest"
