#!/usr/bin/env bash
# Fine-tune both bundled demo models on one CUDA GPU within a fixed wall-clock budget (about 10
# minutes), so that the time pays off: nothing waits for phantoms, the fine-tuning is gentle, and
# every model is exported and split the moment its run stops.
#
#   bash scripts/gpu_finetune_demos.sh OUT_DIR SECONDS
#
# Timeline (both models at once on the one GPU):
#   0. preflight, a few seconds: imports, the device, the bundled files, the budget; any problem
#      ends the script before anything is started;
#   1. the phantoms of each model's run are made into a phantom cache (float16, memory-mapped) in
#      the background, on most of the cores, while D warms up on a few phantoms with G frozen
#      (a model file holds no D, and a fresh D would shake G); the warm-up lasts until the cache
#      is complete, at least WARM_SECONDS and at most a third of the time left (a cache kept from
#      an earlier call, PHANTOM_CACHE, is simply read);
#   2. a gentle fine-tuning from the warmed-up run: lower learning rates (G 5e-5, D 1e-4 chest /
#      5e-5 brain), mode seeking 0.1 ramped in over RAMP iterations, EMA 0.999, and D's
#      differentiable augmentation (translation, cutout, colour) with ADA steering its
#      probability, so D does not memorise the phantoms, and a lazy R1 penalty (R1, every 16
#      iterations; the best figures of the 128^3 CPU ablation in docs/demo-models.md);
#   3. a hard stop (SIGTERM: the iteration is finished, checkpointed and exported) MARGIN seconds
#      before the budget ends; that model is at once exported in float16 with G averaged over its
#      last 3 checkpoints and split into 15 MB parts (for transfers that cap files at 16 MiB; put
#      them together with: cat NAME.part-* > NAME);
#   4. last and optional (GALLERY=1, only if at least 60 s are left): the gallery figures.
# OUT_DIR gets the logs, the models' parts and the figures.
#
# On a machine with torch but without nibabel or nilearn and no package index, bring them as
# wheels (.whl, ignored):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 -d .whl nibabel==5.4.2 nilearn==0.14.1
# then run, e.g.:
#   bash scripts/gpu_finetune_demos.sh $OUT 540
# Checked end to end on a CPU with tiny settings:
#   DEVICE=cpu BATCH=1 PHANTOMS=4 WARM_PHANTOMS=2 WARM_SECONDS=20 CHECKPOINT_EVERY=2 MARGIN=40 \
#       bash scripts/gpu_finetune_demos.sh /tmp/gpu-check 300
# Environment: DEVICE (cuda), RUNS (/tmp/gpu-runs), BATCH (4), PHANTOMS (800: made in about the
# warm-up's time on 16 cores), WARM_PHANTOMS (32), WARM_SECONDS (45), RAMP (1000), CHECKPOINT_EVERY (250), MARGIN (60), PRECISION (bf16),
# UPSAMPLE (nearest), R1 (1; 0 turns it off), GALLERY (1), PHANTOM_CACHE ($RUNS/phantom-cache), PYTHON (python3).
set -euo pipefail
out=${1:?usage: gpu_finetune_demos.sh OUT_DIR SECONDS}
seconds=${2:?usage: gpu_finetune_demos.sh OUT_DIR SECONDS}
cd "$(dirname "$0")/.."
start=$(date +%s)
device=${DEVICE:-cuda} runs=${RUNS:-/tmp/gpu-runs} batch=${BATCH:-4}
phantoms=${PHANTOMS:-800} warm_phantoms=${WARM_PHANTOMS:-32} warm_seconds=${WARM_SECONDS:-45}
ramp=${RAMP:-1000} checkpoint_every=${CHECKPOINT_EVERY:-250} margin=${MARGIN:-60}
precision=${PRECISION:-bf16} upsample=${UPSAMPLE:-nearest} gallery=${GALLERY:-1} r1=${R1:-1}
cache=${PHANTOM_CACHE:-$runs/phantom-cache}
python=${PYTHON:-python3}
mkdir -p "$out" "$runs"
left() { echo $(( seconds - ($(date +%s) - start) )); }

# -- 0. preflight --------------------------------------------------------------------------------
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$python" - "$device" <<'EOF' | tee "$out/preflight.txt"
import sys

import nibabel, nilearn, torch  # noqa: F401  (the phantoms and model files need them)

from engine.checkpoints import read_model_card
from engine.device import describe_hardware

device = torch.device(sys.argv[1])
if device.type == "cuda" and not torch.cuda.is_available():
    sys.exit("preflight: no CUDA device here")
for kind in ("chest-ct", "brain-mri"):
    card = read_model_card(f"resources/models/demo-{kind}.safetensors")
    print(f"{kind}: {card.name}, {card.config.resolution}^3")
print("device:", describe_hardware(device), "| torch", torch.__version__)
EOF
if (( $(left) < warm_seconds + margin + 60 )); then
    echo "preflight: $seconds s leave no time to train after the warm-up and the ${margin} s margin" >&2
    exit 2
fi
cores=$(nproc)
fill_workers=$(( cores / 2 - 1 > 1 ? cores / 2 - 1 : 1 ))  # per kind; a core each stays for the runs
export OMP_NUM_THREADS=1

# -- 1-3. per model ------------------------------------------------------------------------------
finetune() {  # kind short lr_d seed
    local kind=$1 short=$2 lr_d=$3 seed=$4 name init fill warm
    name="Demo $( [ "$short" = chest ] && echo "chest CT" || echo "brain MRI") (phantoms, 128)"
    local common=(--phantoms "$kind" --device "$device" --precision "$precision" --batch-size "$batch"
        --phantom-cache "$cache" --diffaugment translation,cutout,color --ada-target 0.6 --upsample "$upsample"
        --r1 "$r1" --r1-every 16)
    # the main run's phantoms (seeds (seed + 1) * 1000003 ...) into the cache, while D warms up
    "$python" -m engine phantoms --kind "$kind" --size 128 --count "$phantoms" --seed $(( (seed + 1) * 1000003 )) \
        --cache "$cache" --workers "$fill_workers" >"$out/$short-cache.log" 2>&1 &
    fill=$!
    local warm_start=$SECONDS
    timeout -s TERM -k 30 $(( $(left) / 3 )) "$python" -m engine train "${common[@]}" --out "$runs/warm-$short" \
        --init-from "resources/models/demo-$kind.safetensors" --lr-g 0 --lr-d "$lr_d" --ema 0.999 \
        --phantom-count "$warm_phantoms" --iterations 1000000 --checkpoint-every 50 --keep 1 --seed "$seed" &
    warm=$!
    wait "$fill" || echo "the phantom cache was not filled; the run makes what is missing" >&2
    while (( SECONDS - warm_start < warm_seconds )) && kill -0 "$warm" 2>/dev/null; do sleep 1; done
    kill -TERM "$warm" 2>/dev/null || true  # timeout passes it on: the warm-up checkpoints and stops
    wait "$warm" || true
    init="$runs/warm-$short"
    if ! compgen -G "$init/checkpoints/checkpoint-*.pt" >/dev/null; then
        init="resources/models/demo-$kind.safetensors"  # stopped before its first checkpoint
    fi
    timeout -s TERM -k 30 $(( $(left) - margin )) "$python" -m engine train "${common[@]}" --out "$runs/ft-$short" \
        --init-from "$init" --lr-g 5e-5 --lr-d "$lr_d" --mode-seeking 0.1 --mode-seeking-ramp "$ramp" \
        --ema 0.999 --phantom-count "$phantoms" --checkpoint-every "$checkpoint_every" --keep 4 \
        --iterations 1000000 --seed $(( seed + 1 )) --workers "$fill_workers" --name "$name" || true
    # the moment the run stops: its model in float16 (G averaged over the last 3 checkpoints), split
    local kept average model="$runs/demo-$kind.safetensors"
    kept=$(ls "$runs/ft-$short/checkpoints" 2>/dev/null | grep -c '^checkpoint-' || true)
    average=$(( kept < 3 ? (kept > 0 ? kept : 1) : 3 ))
    "$python" -m engine export --run "$runs/ft-$short" --out "$model" --half --average "$average" --force
    split -b 15M -d "$model" "$out/$(basename "$model").part-"
    echo "$kind: exported and split at $(( $(date +%s) - start )) s"
}

finetune chest-ct chest 1e-4 21 >"$out/chest.log" 2>&1 &
chest=$!
finetune brain-mri brain 5e-5 23 >"$out/brain.log" 2>&1 &
brain=$!
wait "$chest" "$brain" || true
tail -n 1 "$out/chest.log" "$out/brain.log"

# -- 4. the gallery, if there is time --------------------------------------------------------------
if [ "$gallery" = 1 ] && (( $(left) > 60 )); then
    timeout -s KILL $(( $(left) - 10 )) "$python" benchmarks/demo_gallery.py "$out/demo-samples.png" \
        --models "$runs/demo-chest-ct.safetensors" "$runs/demo-brain-mri.safetensors" --variation 6 \
        --phantom-cache "$cache" 2>&1 | tee "$out/figures.txt" || echo "gallery stopped (time)"
fi
echo "done in $(( $(date +%s) - start )) s"
