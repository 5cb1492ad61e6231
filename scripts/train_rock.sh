#!/usr/bin/env bash
# Train the rock model of the experiments: 64 x 64 patches of the segmented Berea sandstone
# micro-CT volume (z-slices 0..299 train, 300..399 test), DCGAN then the conv encoder, with the
# project's own `genc train`. LATENT (the generator's latent size, default 128) is the journal's
# Table 3 knob; M is the code size of the encoder; R1 (unset: none) the R1 penalty weight.
# Resumable. Measured with OMP_NUM_THREADS=1 and another training on the second core:
# GAN 2000 steps in 1835 s, encoder 2000 steps in 822 s.
# Usage: bash scripts/train_rock.sh [RUN_DIR] [ZIP]
set -euo pipefail
run=${1:-runs/berea64_w32}
data=${2:-../shared/data/rock/berea.zip}
genc=${GENC:-genc}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
[ -f "$data" ] || { echo "no Berea volume at $data (see ../shared/data/README.md)" >&2; exit 2; }
opts=(--data rock --data-opt "path=$data" --data-opt patch=64 --data-opt stride=32
      --data-opt test_fraction=0.25)

start=$(date +%s)
$genc train gan "${opts[@]}" --out "$run" --arch dcgan --latent-dim ${LATENT:-128} --width ${WIDTH:-32} \
    --steps ${GAN_STEPS:-2000} --batch-size 64 --checkpoint-every 250 --sample-every 250 \
    --seed 0 ${R1:+--r1 $R1} --resume
gan_done=$(date +%s)
[ -n "${GAN_ONLY:-}" ] && exit 0  # experiments/rock_latent_sizes.sh shares one encoder
$genc train encoder "${opts[@]}" --model "$run" --m ${M:-128} --width 16 --real-fraction 0.5 \
    --steps ${ENCODER_STEPS:-2000} --batch-size 64 --seed 0 --resume
end=$(date +%s)
echo "GAN: $((gan_done - start)) s, encoder: $((end - gan_done)) s (this invocation)" \
    | tee -a "$run"/train_time.txt
