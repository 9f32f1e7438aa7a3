#!/usr/bin/env bash
# One short GPU check (under 8 minutes): the test suite on CUDA, then many runs at once and one big batch.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; PYTHON=... picks the interpreter
#
# The tests build their configs with device="auto", which resolves to CUDA on a machine that has it, so
# they train on the GPU wherever they leave the device to the library. No test needs a GPU; this script
# does, and says so on a machine without one.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'PYEOF' || exit 2
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check.sh: no CUDA device on this machine")
print(f"CUDA: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PYEOF
status=0
echo; echo "## the test suite on CUDA (browser tests left out)"
timeout 300 "$PY" -m pytest -q -x -p no:cacheprovider tests --ignore=tests/browser || status=1
echo; echo "## many runs at once on CUDA: 1, 8 and 30 runs of the default 2D shape at batch 128"
timeout 100 "$PY" benchmarks/bench_many_runs.py --device cuda --batch 128 --runs 1 8 30 --iters 20 --solo-repeats 2 \
  || status=1
echo; echo "## one run at batch 4096 on CUDA (the GPU default), looped against stacked for a single run"
timeout 60 "$PY" benchmarks/bench_many_runs.py --device cuda --batch 4096 --runs 1 --iters 30 --solo-repeats 0 \
  || status=1
exit $status
