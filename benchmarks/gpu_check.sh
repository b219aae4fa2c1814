#!/usr/bin/env bash
# Prepared GPU check for issue 8 (not run on this CPU-only machine; no figures are claimed for it yet).
# Training images/s of ctranscnn_tiny at 224 px on one GPU, exact fast paths on, fp32 and bf16 autocast,
# each with and without torch.compile, at the paper's batch (32), and the best at 128; then the projected wall time
# of the paper protocol (300 epochs x 46,563 images, model compute only) and whether it fits in 5 hours.
# Each run is capped (60 s, 100 s when compiling) so the whole script stays under ~8 minutes.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      # writes OUT_DIR/gpu_check.json and prints a table
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-${OUT:-results}}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
runs=()
# batch:options:timeout (s); compiling takes a minute or two, the others ~20 s
for cfg in "32::60" "32:--bf16:60" "32:--compile:100" "32:--bf16 --compile:100" "128:--bf16 --compile:100"; do
  IFS=: read -r batch opts limit <<< "$cfg"
  name="b${batch}${opts// /}"
  # shellcheck disable=SC2086
  if timeout "$limit" "$PY" -m ctranscnn bench --device cuda --model ctranscnn_tiny --size 224 --batch "$batch" \
      --mode train --fast --no-ref --warmup 3 --repeats 10 $opts --json > "$OUT/gpu_$name.json"; then
    runs+=("$OUT/gpu_$name.json")
  else
    echo "run $name failed or timed out" >&2
  fi
done
"$PY" - "$OUT/gpu_check.json" "${runs[@]}" <<'PYEOF'
import json, sys
images = 300 * 46_563  # paper protocol: 300 epochs of the NIH training split
rows = []
for path in sys.argv[2:]:
    r = json.load(open(path))
    hours = images / r["images_per_s"] / 3600
    rows.append({"batch": r["batch"], "bf16": r["options"]["bf16"], "compile": r["options"]["compile"],
                 "images_per_s": r["images_per_s"], "peak_device_mb": r["peak_memory_mb"],
                 "paper_protocol_hours": hours, "device": r["device_name"], "torch": r["torch"]})
    print(f"{r['device_name']}  batch {r['batch']:>3}  bf16={r['options']['bf16']!s:5}  "
          f"compile={r['options']['compile']!s:5}  {r['images_per_s']:8.1f} img/s  "
          f"{r['peak_memory_mb']:7.0f} MB  300 epochs: {hours:5.2f} h {'(< 5 h)' if hours < 5 else ''}")
json.dump(rows, open(sys.argv[1], "w"), indent=1)
PYEOF
