#!/usr/bin/env bash
# The CompressAI peer of benchmarks/rate_distortion.py, end to end, in its own environment
# (CompressAI needs numpy < 2; the project's environment has numpy >= 2.3.5).
#
#   bash benchmarks/compressai_peer.sh DIR STEPS [rate_distortion.py options...]
#
# 1. exports the training and test images to DIR (project environment, the active one);
# 2. makes DIR/../.peer-venv (torch from the local wheel store, compressai 1.2.8, safetensors)
#    unless it exists, and trains one factorized-prior model per lambda for STEPS steps;
# 3. the caller then runs rate_distortion.py ... --peer DIR to put the peer beside the GE codec.
set -euo pipefail
dir=$1
steps=$2
shift 2
python benchmarks/rate_distortion.py --export-peer "$dir" "$@"
venv=${PEER_VENV:-$dir/../.peer-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch==2.14.1 torchvision==0.29.1
    "$venv/bin/pip" install --quiet compressai==1.2.8 safetensors
fi
"$venv/bin/python" benchmarks/compressai_peer.py "$dir" --steps "$steps" \
    --lambdas "${PEER_LAMBDAS:-0.0018,0.0067,0.025}"
