#!/usr/bin/env bash
# The journal's Table 3 latent-size study on Berea rock: one DCGAN per latent size (the recipe of
# scripts/train_rock.sh), every GE solved with the SAME encoder (the journal: "the same AE is used
# for all models"), the one trained in runs/berea64_w32 on the latent-128 generator's samples.
# Then experiments/rock_table3.json on each. Resumable (training and bench).
# R1 (the R1 penalty weight, unset: none) and GAN_STEPS pass through to scripts/train_rock.sh;
# with R1 set the runs are runs/berea64_l<LATENT>_r1 (the latent-64 run collapsed without it).
# Usage: [R1=1 GAN_STEPS=1500] bash experiments/rock_latent_sizes.sh [LATENT ...]   (default: 64 256)
set -euo pipefail
base=runs/berea64_w32
[ -f "$base/encoder.safetensors" ] || { echo "train $base first: bash scripts/train_rock.sh" >&2; exit 2; }
latents=("$@")
[ ${#latents[@]} -gt 0 ] || latents=(64 256)
for latent in "${latents[@]}"; do
  run=runs/berea64_l$latent${R1:+_r1}
  GAN_ONLY=1 LATENT=$latent bash scripts/train_rock.sh "$run"
  for f in encoder.json encoder.safetensors decoder.json decoder.safetensors; do cp "$base/$f" "$run/$f"; done
  python - "$base" "$run" <<'PY'
import json, sys
base, run = sys.argv[1:]
info = json.load(open(f"{run}/model.json"))
shared = json.load(open(f"{base}/model.json"))
info.update(code_dim=shared["code_dim"], encoder_steps=shared["encoder_steps"], encoder_from=base)
json.dump(info, open(f"{run}/model.json", "w"), indent=2, sort_keys=True)
PY
  genc bench experiments/rock_table3.json --model "$run" --out "experiments/results/rock_table3_l$latent${R1:+_r1}"
done
