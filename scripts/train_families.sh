#!/usr/bin/env bash
# The generator families on one data set, with the project's own `genc train`: BEGAN (its
# discriminator's encoder is GE0) plus a GE1 conv encoder trained on its samples, and the
# progressive GAN (pGAN). Each run's wall times are appended to RUN/train_time.txt; the sample
# grids are RUN/samples/step_*.png. Resumable: rerun after an interruption.
# DATA: mnist5k (embedded, 28 x 28) or celeba (../shared/data/celeba_aligned_9k at 64 x 64 x 3).
# BEGAN uses the paper's batch of 16 (its full-resolution conv stacks cost ~1.6 s a step at
# batch 64 on 28 px, one thread). Step counts are CPU budgets (env BEGAN_STEPS, PHASE_STEPS,
# PGAN_STEPS, ENCODER_STEPS; BEGAN_BATCH, BEGAN_WIDTH). On one thread a BEGAN step costs about
# 0.4 s on mnist5k and 1 s on CelebA at width 16, a pGAN step 3-7 s on CelebA at batch 64.
# Usage: bash scripts/train_families.sh DATA [RUN_PREFIX]
set -euo pipefail
data=${1:?usage: bash scripts/train_families.sh mnist5k|celeba [RUN_PREFIX]}
genc=${GENC:-genc}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
case "$data" in
  mnist5k) opts=(--data mnist5k); prefix=${2:-runs/mnist5k}; latent=64; width=32
           began=${BEGAN_STEPS:-1500}; began_width=32
           phase=${PHASE_STEPS:-500}; pgan=${PGAN_STEPS:-3000}
           enc=${ENCODER_STEPS:-1500}; m=64 ;;
  celeba)  root=../shared/data/celeba_aligned_9k
           [ -d "$root" ] || { echo "no CelebA folder at $root (see ../shared/data/README.md)" >&2; exit 2; }
           opts=(--data folder --data-opt "root=$root" --data-opt size=64 --data-opt test_size=1000
                 --data-opt cache=true); prefix=${2:-runs/celeba64}; latent=128; width=32
           began=${BEGAN_STEPS:-3000}; began_width=16
           phase=${PHASE_STEPS:-50}; pgan=${PGAN_STEPS:-450}
           enc=${ENCODER_STEPS:-400}; m=128 ;;
  *) echo "unknown DATA $data: mnist5k or celeba" >&2; exit 2 ;;
esac
common=(--latent-dim $latent --width $width --checkpoint-every 250 --sample-every 250 --seed 0
        --resume)

timed() {  # timed RUN LABEL COMMAND...: run, then append "LABEL: N s" to RUN/train_time.txt
  local run=$1 label=$2; shift 2
  local start; start=$(date +%s)
  "$@"
  mkdir -p "$run"; echo "$label: $(( $(date +%s) - start )) s (this invocation)" | tee -a "$run/train_time.txt"
}

timed "$prefix"_began "began $began steps" \
  $genc train gan "${opts[@]}" --out "$prefix"_began --arch began --steps "$began" \
    --batch-size ${BEGAN_BATCH:-16} "${common[@]}" --width ${BEGAN_WIDTH:-$began_width}
timed "$prefix"_began "GE1 conv encoder $enc steps" \
  $genc train encoder "${opts[@]}" --model "$prefix"_began --m $m --real-fraction 0.5 \
    --steps "$enc" --batch-size 64 --seed 0 --resume
timed "$prefix"_pgan "pgan $pgan steps, phase $phase" \
  $genc train gan "${opts[@]}" --out "$prefix"_pgan --arch pgan --phase-steps "$phase" \
    --steps "$pgan" --batch-size 64 "${common[@]}" --sample-every $(( phase < 250 ? phase : 250 )) \
    --checkpoint-every $(( phase < 250 ? phase : 250 ))
