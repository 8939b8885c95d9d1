#!/usr/bin/env bash
# Fine-tune both bundled demo models at the reference's batch on one CUDA GPU, in a fixed wall-clock
# time, and bring back the exported models, logs and gallery figures.
#
#   bash scripts/gpu_finetune_demos.sh OUT_DIR SECONDS
#
# The two models train at once on the one GPU; each run has its phantoms made first, on half
# the cores (--workers). Per model:
#   1. D warm-up with G frozen (a model file holds no D, and a fresh D would wreck G), 32 phantoms;
#   2. the bundled settings of the last CPU stage (bf16, EMA 0.99, mode seeking 0.1) at batch 4.
# When SECONDS are up, stage 2 is stopped with SIGTERM (it saves a checkpoint). Each run is then
# exported in float16 with G averaged over its last 3 checkpoints, and the gallery benchmark runs
# on the new files. OUT_DIR gets the models, split into 15 MB parts (for transfers that cap
# files at 16 MiB; put them together with: cat NAME.part-* > NAME), the
# logs and the gallery figures.
#
# On a machine with torch but without nibabel or nilearn and no package index, bring them as wheels (.whl, ignored):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 -d .whl nibabel==5.4.2 nilearn==0.14.1
# then run, e.g.:
#   bash scripts/gpu_finetune_demos.sh $OUT 480
# Environment: DEVICE (default cuda), RUNS (default /tmp/gpu-runs), BATCH (4), PHANTOMS (300),
# WARM_PHANTOMS (32), PYTHON (python3).
set -euo pipefail
out=${1:?usage: gpu_finetune_demos.sh OUT_DIR SECONDS}
seconds=${2:?usage: gpu_finetune_demos.sh OUT_DIR SECONDS}
cd "$(dirname "$0")/.."
device=${DEVICE:-cuda} runs=${RUNS:-/tmp/gpu-runs} batch=${BATCH:-4}
phantoms=${PHANTOMS:-300} warm_phantoms=${WARM_PHANTOMS:-32}
python=${PYTHON:-python3}
mkdir -p "$out" "$runs"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
cores=$(nproc)
workers=$(( cores / 2 > 1 ? cores / 2 : 1 ))
export OMP_NUM_THREADS=$workers
start=$(date +%s)
warmup_seconds=$(( seconds / 6 ))
export_seconds=120  # export, averaging and the gallery, at the end

finetune() {  # kind short lr_d seed
    local kind=$1 short=$2 lr_d=$3 seed=$4 name
    name="Demo $( [ "$short" = chest ] && echo "chest CT" || echo "brain MRI") (phantoms, 128)"
    timeout -s TERM -k 60 "$warmup_seconds" "$python" -m engine train --phantoms "$kind" \
        --out "$runs/warm-$short" --init-from "resources/models/demo-$kind.safetensors" --device "$device" \
        --precision bf16 --lr-g 0 --lr-d "$lr_d" --ema 0.99 --batch-size "$batch" --phantom-count "$warm_phantoms" \
        --iterations 300 --seed "$seed" --workers "$workers" || true
    local init="$runs/warm-$short" left=$(( seconds - ($(date +%s) - start) - export_seconds ))
    if ! compgen -G "$init/checkpoints/checkpoint-*.pt" >/dev/null; then
        init="resources/models/demo-$kind.safetensors"  # stopped before its first iteration
    fi
    timeout -s TERM -k 60 "$left" "$python" -m engine train --phantoms "$kind" --out "$runs/ms-$short" \
        --init-from "$init" --device "$device" --precision bf16 --lr-d "$lr_d" \
        --mode-seeking 0.1 --ema 0.99 --batch-size "$batch" --phantom-count "$phantoms" \
        --checkpoint-every 100 --keep 6 --iterations 1000000 --seed $((seed + 1)) --workers "$workers" \
        --name "$name" || true
}

finetune chest-ct chest 2e-4 21 >"$out/chest.log" 2>&1 &
finetune brain-mri brain 1e-4 23 >"$out/brain.log" 2>&1 &
wait

models=()
for kind in chest-ct brain-mri; do
    short=${kind%%-*}
    kept=$(ls "$runs/ms-$short/checkpoints" 2>/dev/null | grep -c '^checkpoint-' || true)
    average=$(( kept < 3 ? (kept > 0 ? kept : 1) : 3 ))
    "$python" -m engine export --run "$runs/ms-$short" --out "$runs/demo-$kind.safetensors" --half \
        --average "$average" | tee -a "$out/$short.log"
    models+=("$runs/demo-$kind.safetensors")
done
"$python" benchmarks/demo_gallery.py "$out/demo-samples.png" --models "${models[@]}" --variation 6 \
    2>&1 | tee "$out/figures.txt"
for model in "${models[@]}"; do  # parts of at most 15 MB, for transfers capped at 16 MiB
    split -b 15M -d "$model" "$out/$(basename "$model").part-"
done
echo "done in $(( $(date +%s) - start )) s"
