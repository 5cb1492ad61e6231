#!/usr/bin/env bash
# Reproduce the shipped weights in src/generative_encoder/weights/mnist5k/ from scratch on the embedded MNIST-5k digits.
# CPU only; on the 2-core reference machine the whole script takes about the time printed in
# "$dest"/README.md. Usage: bash scripts/train_mnist5k.sh [RUN_DIR]
set -euo pipefail
run=${1:-runs/mnist5k}
genc=${GENC:-genc}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one thread is fastest for these small convolutions here

start=$(date +%s)
# AC-GAN (--class-labels): the last 10 latent coordinates are a one-hot digit class that D's
# auxiliary head learns from the labels, so that each category draws its own digit
# (experiments/RESULTS.md section 1 measures the samples).
$genc train gan --data mnist5k --out "$run" --arch dcgan --latent-dim 64 --width 48 \
    --latent-dist normal+cat10 --class-labels --steps 8000 --batch-size 64 \
    --checkpoint-every 500 --sample-every 500 --seed 0 --resume
gan_done=$(date +%s)
$genc train encoder --data mnist5k --model "$run" --m 64 --width 16 --real-fraction 0.5 \
    --steps 3000 --batch-size 64 --seed 0 --resume --regressor-steps 8000 --regressor-hidden 1024 \
    --regressor-real-steps 2000
# the robust encoder family: decodes the clean digit from GE's x_dagger of a degraded one
$genc train encoder --data mnist5k --model "$run" --kind robust \
    --degradations denoise,deblur,superres,inpaint --m 64 --width 16 --real-fraction 0.5 \
    --steps 3000 --batch-size 64 --seed 0 --resume --regressor-steps 0
$genc train codec --data mnist5k --model "$run"
end=$(date +%s)
# plug-and-play's denoiser (the pnp method), trained on the same digits
$genc train denoiser --data mnist5k --model "$run" --steps 3000 --seed 0 --resume
denoiser_done=$(date +%s)

dest=src/generative_encoder/weights/mnist5k
mkdir -p "$dest"
for name in generator discriminator encoder decoder robust_encoder robust_decoder regressor codec \
    denoiser; do
    cp "$run/$name.safetensors" "$run/$name.json" "$dest"/
done
cp "$run/model.json" "$run/gan_log.csv" "$run/encoder_log.csv" "$run/regressor_log.csv" \
    "$run/robust_log.csv" "$run/denoiser_log.csv" "$dest"/
cp "$(ls "$run"/samples/step_*.png | tail -n 1)" "$dest"/samples.png
echo "GAN: $((gan_done - start)) s, encoder: $((end - gan_done)) s," \
    "denoiser: $((denoiser_done - end)) s" | tee "$dest"/train_time.txt
