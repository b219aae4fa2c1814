#!/usr/bin/env bash
# All CPU benchmarks in one command; writes results/benchmarks.md (+ results/benchmarks_model.json).
# Run it on an otherwise idle machine: the figures are medians of alternating model/resnet50 steps,
# but with other processes competing for the cores two-thread timings become erratic.
#   bash benchmarks/run_all.sh [extra bench_model.py options, e.g. --threads 2 --repeats 5]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python
uptime
"$PY" benchmarks/bf16_loss_curve.py
"$PY" benchmarks/bench_data.py --images 64 --sizes 64 128 224 --model ctranscnn_tiny \
    --json results/benchmarks_data.json
"$PY" benchmarks/bench_model.py "$@"  # last: its report includes the data and GPU results
uptime
