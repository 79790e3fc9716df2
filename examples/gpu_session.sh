#!/usr/bin/env bash
# One call of a lent GPU machine (docs/gpu.md): a training chunk of the kit's run, the CUDA tests, the whole
# pipeline's speed per precision, compile mode and size, and the network's speed per layout, compile mode and
# correlation, all written to "$OUT/log.txt" beside the chunk's weight shards. Every stage has its own time limit, so
# one that hangs costs its limit and not the call.
#
#   device tool: carry [".kit", ".whl"], timeout_s 590, command: bash examples/gpu_session.sh
#
# Settings (environment), with the defaults a GPU session uses; tests/test_kit.py runs it on CPU with tiny ones:
#   KIT, RUN, WHEELS  the kit folder, the run folder on the machine, and the folder of wheels to install there
#   TRAIN_MINUTES  training time of the chunk (3.5: the whole call then takes about 9.5 minutes on an H200)
#   DEVICE, MODEL  the device and network that `stvup bench` and examples/speed_variants.py time
#   BENCHES        `stvup bench` runs, each PRECISION:COMPILE:SIZE (issue 42: eager against CUDA graphs, two sizes;
#                  empty: none)
#   SIZE           the output size examples/speed_variants.py times
#   TESTS          pytest -k expression of the tests to run (empty: none); the default leaves out tests/test_kit.py's
#                  dry run of this script, which would otherwise run the script again inside its own tests stage
#   PYTHON         the interpreter (python3)
#   VARIANTS       extra arguments of examples/speed_variants.py (torch.compile is left out: over 95 s there)
#   LIMIT_SCALE    factor on every stage's time limit (1); the CPU dry run raises it, as its limits guard only hangs
set -u
: "${OUT:?OUT must name the folder whose files come back}"
: "${KIT:=.kit}" "${RUN:=runs/gpu}" "${WHEELS:=.whl}" "${TRAIN_MINUTES:=3.5}"
: "${DEVICE:=cuda}" "${MODEL:=stvun}" "${SIZE:=960x540}" "${PYTHON:=python3}"
: "${BENCHES=bf16:off:960x540 bf16:cuda-graphs:960x540 fp16:off:960x540 fp16:cuda-graphs:960x540 \
bf16:off:1920x1080 bf16:cuda-graphs:1920x1080 fp16:cuda-graphs:1920x1080 fp32:off:960x540}"
: "${TESTS=(cuda or gpu) and not gpu_session_script}" "${VARIANTS:=--compile off,cuda-graphs --precisions bf16,fp16}"
: "${LIMIT_SCALE:=1}"
export PYTHONUNBUFFERED=1
log="$OUT/log.txt"

stage() {  # stage NAME SECONDS COMMAND...: run under a limit (times LIMIT_SCALE), log its exit status and duration
  local name=$1 limit began
  limit=$(awk "BEGIN { print int($2 * $LIMIT_SCALE) }")
  shift 2
  began=$(date +%s)
  echo "== $name" >>"$log"
  timeout "$limit" "$@" >>"$log" 2>&1
  echo "== $name: rc=$? in $(($(date +%s) - began)) s" >>"$log"
}

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; nproc
  "$PYTHON" -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda)"
} >>"$log" 2>&1

# PyAV's wheel travels in $WHEELS where the machine lacks it, and goes in first: the kit's presets train on the
# real-video mix, whose compression (H.264, MPEG-2, 4:2:0) runs through PyAV, and the tests and benches read and
# write video. The pack itself is read with OpenCV.
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl >>"$log" 2>&1
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # examples/ import stvup from the working tree
fi

# The chunk's limit leaves a minute for start-up and the shards.
stage train $(awk "BEGIN { print int($TRAIN_MINUTES * 60 + 60) }") \
  "$PYTHON" -m stvup kit chunk --kit "$KIT" --run "$RUN" --out "$OUT" --minutes "$TRAIN_MINUTES" --device "$DEVICE"

if [ -n "$TESTS" ]; then
  # -rfEsp: each selected test's outcome by name (failed, error, skipped or passed), for the log and its readers.
  stage tests 150 "$PYTHON" -m pytest -q -p no:cacheprovider -rfEsp tests -k "$TESTS"
fi
for run in $BENCHES; do
  IFS=: read -r precision mode size <<<"$run"
  stage "bench $precision $mode $size" 45 "$PYTHON" -m stvup bench --device "$DEVICE" --model "$MODEL" \
    --size "$size" --frames 8 --precision "$precision" --compile "$mode" --no-baseline --json
done
# shellcheck disable=SC2086 # VARIANTS is a list of arguments
stage variants 120 "$PYTHON" examples/speed_variants.py --device "$DEVICE" --model "$MODEL" --size "$SIZE" \
  --budget 90 $VARIANTS
tail -c 4000 "$log"
