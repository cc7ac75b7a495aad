#!/usr/bin/env bash
# One prepared, resumable training run of the stronger symbolic model (issue 15) on a GPU.
#
#   scripts/train_gpu.sh [MINUTES] [PRESET]        # defaults: 8 minutes, base
#
# Run from the repository root on a machine with a CUDA GPU.  It
#   1. finds the data: $DATA (default /work/train/data, else data/) with tokens_v2_{train,valid,test}.npz
#      (carry them: they are what training reads), or pieces.jsonl + MIDI to tokenize, or, failing
#      both, runs scripts/prepare_data.py on $SHARED_DATA (default ../shared/data; needs music21);
#   2. trains `--preset PRESET --device cuda` (bf16 autocast) from $STATE if a state is there
#      (--resume), else fresh with the cosine schedule fitted to MINUTES; the full state is saved
#      every 500 steps, at the time limit and on SIGTERM, so a cut run resumes where it stopped;
#   3. writes the best checkpoint by validation loss to $RUN/best (never into the package's
#      weights/), the state to $RUN/state, logs to $RUN/train.log.
# $RUN defaults to $OUT/symbolic-$PRESET when $OUT is set (the device tool brings $OUT back),
# else runs/symbolic-$PRESET.
#
# On the lent machine (bare, no network, python3 with torch but without miditok/symusic), from a
# session here:  mkdir -p data/gpu && cp /work/train/data/tokens_v2_*.npz data/gpu/ &&
# cp -r /work/train/wheels data/gpu/ ; then run with carry ["data/gpu"] (data/ is git-ignored;
# the tokens are about 30 MB) and the command
#   DATA=data/gpu WHEELS=data/gpu/wheels scripts/train_gpu.sh 8 base
# The device returns at most 8 files of 16 MB from $OUT, two folders down: the fp16 checkpoint
# comes back ($OUT/symbolic-base/best); the full state (about 300 MB for base) does not, so a
# GPU run is one-shot unless a later call on the same warm machine resumes it.
set -euo pipefail

MINUTES="${1:-8}"
PRESET="${2:-base}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DATA="${DATA:-}"
if [ -z "$DATA" ]; then
  if [ -d /work/train/data ]; then DATA=/work/train/data; else DATA=data; fi
fi
RUN="${RUN:-${OUT:+$OUT/symbolic-$PRESET}}"
RUN="${RUN:-runs/symbolic-$PRESET}"
STATE="${STATE:-$RUN/state}"
BATCH="${BATCH:-64}"
LR="${LR:-1e-3}"
DEVICE="${DEVICE:-cuda}"        # DEVICE=cpu and TRAIN_ARGS="--layers 1 ..." smoke-test this script on a CPU
read -r -a EXTRA <<<"${TRAIN_ARGS:-}"
mkdir -p "$RUN" "$DATA"
LOG="$RUN/train.log"

say() { echo "train_gpu: $*" | tee -a "$LOG" >&2; }

# miditok and symusic from carried wheels where the machine's python lacks them
if ! "$PY" -c "import miditok, symusic" 2>/dev/null; then
  if [ -n "${WHEELS:-}" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-deps --no-index --target /tmp/train_gpu_pylib "$WHEELS"/*.whl
    export PYTHONPATH="/tmp/train_gpu_pylib${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "train_gpu: $PY lacks miditok/symusic; set WHEELS to a folder of their wheels" >&2; exit 2
  fi
fi

[ "$DEVICE" = cpu ] || "$PY" - <<'EOF' || { echo "train_gpu: no CUDA device here" >&2; exit 2; }
import sys, torch
ok = torch.cuda.is_available()
print(f"torch {torch.__version__}, cuda {torch.version.cuda}, "
      f"{torch.cuda.get_device_name(0) if ok else 'no GPU'}", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF

have_tokens=1
for s in train valid test; do [ -f "$DATA/tokens_v2_$s.npz" ] || have_tokens=0; done
if [ "$have_tokens" = 0 ] && [ ! -f "$DATA/pieces.jsonl" ]; then
  say "no tokens or pieces in $DATA: preparing from ${SHARED_DATA:-../shared/data}"
  "$PY" scripts/prepare_data.py --out "$DATA" --workers "$(nproc)" 2>>"$LOG"
fi
if [ "$have_tokens" = 0 ]; then
  say "tokenizing $DATA (tokenizer version 2)"
  "$PY" scripts/train_symbolic.py --data "$DATA" --preset "$PRESET" --tokenize-only 2>>"$LOG"
fi

RESUME=()
if [ -f "$STATE/state/state.json" ] || [ -f "$STATE/state.old/state.json" ]; then
  RESUME=(--resume)
  say "resuming the run in $STATE"
else
  RESUME=(--fit-schedule)
  say "fresh run: schedule fitted to $MINUTES minutes"
fi

# a SIGTERM from outside reaches python, which saves its state and exits 0
say "training --preset $PRESET for $MINUTES minutes, batch $BATCH, lr $LR -> $RUN/best"
"$PY" scripts/train_symbolic.py --data "$DATA" --preset "$PRESET" --device "$DEVICE" --batch "$BATCH" --lr "$LR" \
  --dropout 0.1 --threads "$(nproc)" --minutes "$MINUTES" --eval-every "${EVAL_EVERY:-500}" --save-every 500 \
  --state "$STATE" --out "$RUN/best" "${RESUME[@]}" "${EXTRA[@]}" 2>>"$LOG"
say "done: $(tail -n 1 "$RUN/best/train_log.jsonl" 2>/dev/null)"
