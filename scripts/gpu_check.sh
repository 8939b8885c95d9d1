#!/usr/bin/env bash
# One GPU check: CUDA correctness and speed in one command, every result in OUT/report.md.
#
#   bash scripts/gpu_check.sh OUT
#
# Parts, each appended to the report as soon as it finishes (a run cut off still reports what it
# did; a failed part is recorded and the next one runs):
#   1. the machine: GPU, torch, CUDA;
#   2. CUDA tests (pytest -m cuda, tests/test_cuda.py): official parity in strict fp32 at 128^3
#      and 256^3, fast versus straightforward, tf32/bf16/fp16 generation error in HU, which path
#      is faster;
#   3. benchmarks/generate.py on the device (CUDA events, ms, median of 3 alternating runs);
#   4. a training step in bf16, with and without --grad-checkpoint;
#   5. a 2-process torchrun step: NCCL when two GPUs are present, else gloo on the CPU (said);
#   6. peak GPU memory of one official-size 256^3 training iteration at batch 4 next to the
#      full-resolution baseline (benchmarks/train_memory.py);
#   7. engine evaluate on the device (the model of the training step against the phantoms).
# Training data: a small phantom set made once and cached in CACHE (default /tmp/gpu-check-cache).
#
# Environment: DEVICE (cuda; cpu tries the whole script on the CPU with TINY sizes, a few
# minutes), TINY (1 = small sizes; the default with DEVICE=cpu), CACHE, PYTHON (python3).
# A machine without nibabel/nilearn and no package index: wheels in .whl/ are installed first (see
# scripts/gpu_finetune_demos.sh for how to fetch them).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT}
cd "$(dirname "$0")/.."
device=${DEVICE:-cuda}
tiny=${TINY:-$([ "$device" = cpu ] && echo 1 || echo 0)}
cache=${CACHE:-/tmp/gpu-check-cache}
python=${PYTHON:-python3}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)
report="$out/report.md"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
start=$(date +%s)

if [ "$tiny" = 1 ]; then
    sizes="128" train=(--preset tiny --resolution 32 --batch-size 2) phantom_size=32
    memory=(--sizes 32 --preset tiny --batch 2) eval_samples=4
else
    sizes="128 256" train=(--preset official --resolution 256 --batch-size 4) phantom_size=256
    memory=(--sizes 256 --preset official --batch 4) eval_samples=8
fi

part() {  # TITLE SECONDS COMMAND...: run, append its output (tail) and status to the report
    local title=$1 limit=$2 began status
    shift 2
    began=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$out/part.log" 2>&1
    status=$?
    {
        echo "## $title"
        echo
        echo "\`$*\` — exit $status$([ $status = 124 ] && echo ' (timed out)'), $(( $(date +%s) - began )) s"
        echo
        echo '```'
        grep -v '^USDT' "$out/part.log" | tail -n 40
        echo '```'
        echo
    } >>"$report"
    cat "$out/part.log" >>"$out/all.log"
}

{
    echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "device: $device$([ "$tiny" = 1 ] && echo ', tiny sizes (a trial of the script, not GPU figures)')"
    echo
} >"$report"

part "Machine" 60 "$python" -c "
import torch
from engine.device import describe_hardware
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPUs', torch.cuda.device_count())
print(describe_hardware(torch.device('$device')))
"

# a phantom set, made once: training data, and the real set of evaluate
phantoms="$cache/chest-ct-$phantom_size"
if [ ! -f "$phantoms/.complete" ]; then
    part "Phantoms at $phantom_size^3 (made once, cached in $phantoms)" 240 \
        "$python" -m engine phantoms --kind chest-ct --count 4 --size "$phantom_size" --out "$phantoms" \
        && touch "$phantoms/.complete"
fi

GPU_CHECK_DEVICE=$device GPU_CHECK_SIZES=$sizes part "CUDA tests: parity, fast vs straightforward, reduced precision" 240 \
    "$python" -m pytest -q -s -o addopts= -p no:xvfb -p no:cacheprovider -m cuda tests/test_cuda.py
grep '^REPORT' "$out/part.log" | sed 's/^REPORT /- /' >>"$report"
echo >>"$report"

if [ "$tiny" = 1 ]; then bench=(--sizes 128 --repeat 1 --no-demos); else bench=(--sizes 128 256 --repeat 3); fi
part "Generation benchmark" 180 "$python" benchmarks/generate.py --device "$device" "${bench[@]}"

precision=bf16
"$python" -c "import torch; from engine.precision import allowed_precisions; \
    raise SystemExit('bf16' not in allowed_precisions(torch.device('$device')))" || precision=fp32
for checkpointing in "" --grad-checkpoint; do
    run="$cache/train${checkpointing:+-checkpointed}"
    rm -rf "$run"
    part "Training step, $precision ${checkpointing:-without --grad-checkpoint}" 150 \
        "$python" -m engine train --data "$phantoms" --modality ct "${train[@]}" --iterations 2 \
        --precision "$precision" --device "$device" --checkpoint-every 1000 --out "$run" $checkpointing
done

gpus=$("$python" -c "import torch; print(torch.cuda.device_count())")
if [ "$device" = cuda ] && [ "$gpus" -ge 2 ]; then ddp_device=cuda ddp="NCCL on 2 GPUs"; else
    ddp_device=cpu ddp="gloo on the CPU (fewer than two GPUs here, so no NCCL)"; fi
rm -rf "$cache/ddp"
part "2-process torchrun step: $ddp" 150 \
    "$python" -m torch.distributed.run --standalone --nproc_per_node 2 -m engine train --data "$phantoms" \
    --preset tiny --resolution 32 --batch-size 2 --iterations 2 --modality ct --device "$ddp_device" --out "$cache/ddp"

part "Peak memory of one training iteration vs the full-resolution baseline" 150 \
    "$python" benchmarks/train_memory.py --device "$device" "${memory[@]}" --iterations 1

# the model of the training step above (2 iterations: the figures mean nothing, the CUDA paths run)
part "engine evaluate on $device" 120 \
    "$python" -m engine evaluate --checkpoint "$cache/train/model.safetensors" --real "$phantoms" \
    --samples "$eval_samples" --extractor slices --device "$device" --seam-samples 2 --msssim-pairs 2 \
    --reconstructions 2 --no-cache --out "$out/evaluate.json"

echo "done in $(( $(date +%s) - start )) s" >>"$report"
echo "report: $report"
