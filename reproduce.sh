#!/usr/bin/env bash
# Regenerate every table and figure: run notebooks/01_data ... 06_report in order with papermill.
#
#   bash reproduce.sh                  demo profile on phantom data, CPU (< 30 min on 2 cores, data generation included)
#   PROFILE=smoke bash reproduce.sh    CI size: a few minutes
#   PROFILE=paper NIH_ROOT=/data/nih RANZCR_ROOT=/data/ranzcr AUTHORS_LISTS=/data/lists bash reproduce.sh
#                                      real data (any subset) on GPUs
#
# Environment (all optional):
#   PROFILE=smoke|demo|paper  SPLIT=paper|official|patient|image  SEEDS="0 1 2"  DEVICE=auto|cpu|cuda
#   NIH_ROOT, RANZCR_ROOT      real datasets as released (see README); without any, phantoms are generated
#   TCMTD_LIST                 folder with the private TCMTD list files
#   AUTHORS_LISTS              folder with the authors' split lists (needed by SPLIT=paper on real data)
#   DATA_DIR=data RUNS_DIR=runs RESULTS_DIR=results FIGURES_DIR=figures   where things go
#   NOTEBOOKS="01_data 02_train"   run only these (default: all, in order)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PROFILE=${PROFILE:-demo}
SPLIT=${SPLIT:-paper}
DEVICE=${DEVICE:-auto}
DATA_DIR=${DATA_DIR:-data}
RUNS_DIR=${RUNS_DIR:-runs}
RESULTS_DIR=${RESULTS_DIR:-results}
FIGURES_DIR=${FIGURES_DIR:-figures}
NIH_ROOT=${NIH_ROOT:-}
RANZCR_ROOT=${RANZCR_ROOT:-}
TCMTD_LIST=${TCMTD_LIST:-}
AUTHORS_LISTS=${AUTHORS_LISTS:-}
ALL_NOTEBOOKS="01_data 02_train 03_ablation 04_sota 05_gradcam 06_report"
NOTEBOOKS=${NOTEBOOKS:-$ALL_NOTEBOOKS}
[[ $PROFILE == paper ]] && SEEDS=${SEEDS:-"0 1 2"} || SEEDS=${SEEDS:-0}
SEEDS=$(echo "$SEEDS" | tr ',' ' ')

die() { echo "reproduce.sh: FAILED: $*" >&2; exit 1; }
t0=$(date +%s)

bash scripts/setup_env.sh || die "environment setup (scripts/setup_env.sh)"
PY=.venv/bin/python
# The profile's phantom size and count live beside its run sizes (ctranscnn/engine/config.py PHANTOM_DATA);
# an unknown profile fails here, naming the known ones.
read -r PHANTOM_N PHANTOM_SIZE < <($PY -m ctranscnn.report.plan phantom-args "$PROFILE") \
    || die "PROFILE must be one of the profiles in ctranscnn/engine/config.py (got '$PROFILE')"

real_data=${NIH_ROOT}${RANZCR_ROOT}${TCMTD_LIST}
if [[ -z $real_data ]]; then
    [[ $PROFILE == paper ]] && die "PROFILE=paper needs real data: set NIH_ROOT, RANZCR_ROOT and/or TCMTD_LIST"
    for name in cxr14 cxr11 tongue; do
        out="$DATA_DIR/$name-phantom"
        args="$name --out $out --n $PHANTOM_N --size $PHANTOM_SIZE --seed 0"
        # Regenerate only when the generator's arguments changed (the stamp is written last).
        if [[ -f $out/.phantom-args && $(cat "$out/.phantom-args") == "$args" ]]; then
            echo "== phantom $name: reusing $out"
        else
            echo "== phantom $name: generating $PHANTOM_N images at ${PHANTOM_SIZE}px into $out"
            rm -rf "$out"
            # shellcheck disable=SC2086
            $PY -m ctranscnn phantom $args || die "phantom data generation ($name)"
            echo "$args" > "$out/.phantom-args"
        fi
    done
fi

mkdir -p "$RESULTS_DIR/executed" "$RESULTS_DIR/runtime" "$RESULTS_DIR/tables" "$FIGURES_DIR"
rm -f "$RESULTS_DIR/skipped.csv"
if [[ $NOTEBOOKS == "$ALL_NOTEBOOKS" ]]; then
    # A full run replaces the notebooks' outputs, so nothing stale from an earlier run reaches REPORT.md.
    rm -f "$RESULTS_DIR"/tables/0[1-6]_* "$FIGURES_DIR"/0[1-6]_*
fi
runtime="$RESULTS_DIR/runtime/notebooks.tsv"
: > "$runtime"

seeds_yaml="[$(echo "$SEEDS" | xargs | tr ' ' ',')]"
for nb in $NOTEBOOKS; do
    src="notebooks/$nb.ipynb"
    dst="$RESULTS_DIR/executed/$nb.ipynb"
    [[ -f $src ]] || die "no notebook $src"
    echo "== $nb (profile $PROFILE)"
    start=$(date +%s)
    if ! $PY -m papermill "$src" "$dst" --cwd . --log-output --no-progress-bar \
        -p profile "$PROFILE" -p split "$SPLIT" -y "seeds: $seeds_yaml" -p device "$DEVICE" \
        -p data_dir "$DATA_DIR" -p nih_root "$NIH_ROOT" -p ranzcr_root "$RANZCR_ROOT" \
        -p tcmtd_list "$TCMTD_LIST" -p authors_lists "$AUTHORS_LISTS" -p runs_dir "$RUNS_DIR" \
        -p results_dir "$RESULTS_DIR" -p figures_dir "$FIGURES_DIR"; then
        printf '%s\t%s\t%s\n' "$nb" "$(( $(date +%s) - start ))" failed >> "$runtime"
        die "notebook $nb (the executed copy with the error is $dst)"
    fi
    printf '%s\t%s\t%s\n' "$nb" "$(( $(date +%s) - start ))" ok >> "$runtime"
    $PY -m jupyter nbconvert --to html --log-level WARN "$dst" || die "HTML export of $dst"
done

data_label=$([[ -z $real_data ]] && echo "phantom datasets ($DATA_DIR)" || echo "real data")
$PY -m ctranscnn.report.assemble --results "$RESULTS_DIR" --figures "$FIGURES_DIR" --profile "$PROFILE" \
    --data "$data_label" --split "$SPLIT" --seeds "$SEEDS" || die "report assembly"

cat <<MSG

== done in $(( ($(date +%s) - t0) / 60 )) min $(( ($(date +%s) - t0) % 60 )) s (profile $PROFILE)
   tables:     $RESULTS_DIR/tables/   (CSV = source of truth, .md, .tex)
   figures:    $FIGURES_DIR/          (.png, .pdf)
   notebooks:  $RESULTS_DIR/executed/ (.ipynb, .html)
   runs:       $RUNS_DIR/             (manifests, predictions, checkpoints)
   report:     $RESULTS_DIR/REPORT.md
MSG
