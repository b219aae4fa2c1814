#!/usr/bin/env bash
# Regenerate every table and figure: run notebooks/01_data ... 06_report in order with papermill.
#
#   bash reproduce.sh                  demo profile on phantom data, CPU (< 30 min on 2 cores, data generation included)
#   PROFILE=smoke bash reproduce.sh    CI size: a few minutes
#   PROFILE=paper NIH_ROOT=/data/nih RANZCR_ROOT=/data/ranzcr AUTHORS_LISTS=/data/lists bash reproduce.sh
#                                      real data (any subset) on GPUs
#   CHESTMNIST=data/chestmnist_64.npz bash reproduce.sh
#                                      demo profile on real NIH images (ChestMNIST, MedMNIST's split), CPU
#   DRY_RUN=1 PROFILE=paper bash reproduce.sh
#                                      the paper profile's plan, configs and full-size models at 224 px for a
#                                      handful of steps on phantom data in the real layouts (CI; minutes)
#
# Environment (all optional):
#   PROFILE=smoke|demo|paper  SPLIT=paper|official|patient|image  SEEDS="0 1 2"  DEVICE=auto|cpu|cuda
#                              (SEEDS: claim rows' seeds; smoke/demo train the other rows with the first one)
#   NIH_ROOT, RANZCR_ROOT      real datasets as released (see README); without any, phantoms are generated
#   TCMTD_LIST                 folder with the private TCMTD list files
#   AUTHORS_LISTS              folder with the authors' split lists (needed by SPLIT=paper on real data)
#   CHESTMNIST                 a ChestMNIST .npz (python -m ctranscnn data download chestmnist --size 64)
#   NIH_MISSING=error|skip     skip: use the listed NIH images that are present (a partial download)
#   DRY_RUN=1                  with PROFILE=paper: the dry run above (its tables say so)
#   PREFLIGHT=force            PROFILE=paper checks data, plan, step times, disk and memory first
#                              (results/preflight.md) and stops on a problem; force: report it and go on
#   DATA_DIR=data RUNS_DIR=runs RESULTS_DIR=results FIGURES_DIR=figures   where things go
#   RUN_GPUS=1|k|all           with N GPUs: N runs at once, one per GPU (1); DDP runs over k or all GPUs
#                              (see README "Running the paper grid"; SLURM: python -m ctranscnn grid submit)
#   NOTEBOOKS="01_data 02_train"   run only these (default: all, in order)
#   QUIRKS=1|0                 notebook 03's quirks study on / off (default: on for smoke and paper, off for the
#                              demo, whose 30 minutes cannot hold its extra runs; QUIRKS=1 NOTEBOOKS=03_ablation
#                              after a demo run trains only those)
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
CHESTMNIST=${CHESTMNIST:-}
NIH_MISSING=${NIH_MISSING:-error}
DRY_RUN=${DRY_RUN:-}
QUIRKS=${QUIRKS:-}
[[ -z $QUIRKS || $QUIRKS == 0 || $QUIRKS == 1 ]] || { echo "reproduce.sh: QUIRKS must be 1 or 0 (got '$QUIRKS')" >&2; exit 2; }
[[ -n $DRY_RUN && $PROFILE != paper ]] && { echo "reproduce.sh: DRY_RUN=1 needs PROFILE=paper" >&2; exit 2; }
[[ -n $DRY_RUN ]] && SEEDS=${SEEDS:-0}  # one seed: the dry run checks wiring, not variance
ALL_NOTEBOOKS="01_data 02_train 03_ablation 04_sota 05_gradcam 06_report"
NOTEBOOKS=${NOTEBOOKS:-$ALL_NOTEBOOKS}
# SEEDS are the seeds of the rows the claims rest on; in smoke and demo every other row (baselines, the other
# datasets) trains the first one only (ctranscnn/report/plan.py seeds_for).
[[ $PROFILE == smoke ]] && SEEDS=${SEEDS:-"0 1"} || SEEDS=${SEEDS:-"0 1 2"}
SEEDS=$(echo "$SEEDS" | tr ',' ' ')

die() { echo "reproduce.sh: FAILED: $*" >&2; exit 1; }
t0=$(date +%s)

bash scripts/setup_env.sh || die "environment setup (scripts/setup_env.sh)"
PY=.venv/bin/python
# The profile's phantom size and count live beside its run sizes (ctranscnn/engine/config.py PHANTOM_DATA);
# an unknown profile fails here, naming the known ones.
phantoms=$($PY -m ctranscnn.report.plan phantom-args "$PROFILE") \
    || die "PROFILE must be one of the profiles in ctranscnn/engine/config.py (got '$PROFILE')"

if [[ -n $DRY_RUN ]]; then
    # Phantom data in the real layouts with authors'-format lists, handed over exactly as real data would be.
    echo "== dry run: phantom NIH, RANZCR and TCMTD data with the authors' lists in $DATA_DIR/dry"
    dry_env=$($PY -m ctranscnn.report.dryrun prepare --out "$DATA_DIR/dry") || die "dry-run data (ctranscnn.report.dryrun)"
    eval "$dry_env"
fi
real_data=${NIH_ROOT}${RANZCR_ROOT}${TCMTD_LIST}${CHESTMNIST}
if [[ -z $real_data ]]; then
    [[ $PROFILE == paper ]] && die "PROFILE=paper needs real data: set NIH_ROOT, RANZCR_ROOT and/or TCMTD_LIST"
    while read -r name PHANTOM_N PHANTOM_SIZE PHANTOM_FLAGS <&3; do  # "name n size [flags]" per phantom (fd 3: stdin stays free)
        out="$DATA_DIR/$name-phantom"
        args="$name --out $out --n $PHANTOM_N --size $PHANTOM_SIZE --seed 0${PHANTOM_FLAGS:+ $PHANTOM_FLAGS}"
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
    done 3<<< "$phantoms"
fi

mkdir -p "$RESULTS_DIR/executed" "$RESULTS_DIR/runtime" "$RESULTS_DIR/tables" "$FIGURES_DIR"
runtime="$RESULTS_DIR/runtime/notebooks.tsv"
if [[ $NOTEBOOKS == "$ALL_NOTEBOOKS" ]]; then
    # A full run replaces the notebooks' outputs, so nothing stale from an earlier run reaches REPORT.md.
    rm -f "$RESULTS_DIR"/tables/0[1-6]_* "$FIGURES_DIR"/0[1-6]_* "$RESULTS_DIR/skipped.csv" "$RESULTS_DIR/fallbacks.csv"
    : > "$runtime"
else
    # A partial run (NOTEBOOKS=...) keeps the other notebooks' records and replaces its own.
    rerun="^($(echo "$NOTEBOOKS" | xargs | tr ' ' '|'))[[:space:],]"
    for f in "$runtime" "$RESULTS_DIR/skipped.csv" "$RESULTS_DIR/fallbacks.csv"; do
        [[ -f $f ]] && { grep -vE "$rerun" "$f" > "$f.tmp" || true; mv "$f.tmp" "$f"; }
    done
    touch "$runtime"
fi

seeds_yaml="[$(echo "$SEEDS" | xargs | tr ' ' ',')]"
if [[ $PROFILE == paper ]]; then
    echo "== preflight (results in $RESULTS_DIR/preflight.md)"
    # shellcheck disable=SC2046
    $PY -m ctranscnn.report.preflight --profile "$PROFILE" --split "$SPLIT" --seeds "$SEEDS" --device "$DEVICE" \
        --data-dir "$DATA_DIR" --nih-root "$NIH_ROOT" --ranzcr-root "$RANZCR_ROOT" --tcmtd-list "$TCMTD_LIST" \
        --authors-lists "$AUTHORS_LISTS" --chestmnist "$CHESTMNIST" --nih-missing "$NIH_MISSING" \
        --runs-dir "$RUNS_DIR" --results-dir "$RESULTS_DIR" --figures-dir "$FIGURES_DIR" \
        $([[ -n $DRY_RUN ]] && echo "--dry-run --warmup 0 --repeats 1") \
        $([[ ${PREFLIGHT:-} == force ]] && echo --force) || die "preflight (see $RESULTS_DIR/preflight.md)"
fi
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
        -p results_dir "$RESULTS_DIR" -p figures_dir "$FIGURES_DIR" -p chestmnist "$CHESTMNIST" \
        -p nih_missing "$NIH_MISSING" -y "dry_run: $([[ -n $DRY_RUN ]] && echo true || echo false)" \
        -y "quirks: $(case $QUIRKS in 1) echo true ;; 0) echo false ;; *) echo null ;; esac)"; then
        printf '%s\t%s\t%s\n' "$nb" "$(( $(date +%s) - start ))" failed >> "$runtime"
        die "notebook $nb (the executed copy with the error is $dst)"
    fi
    printf '%s\t%s\t%s\n' "$nb" "$(( $(date +%s) - start ))" ok >> "$runtime"
    $PY -m jupyter nbconvert --to html --log-level WARN "$dst" || die "HTML export of $dst"
done

data_label=$([[ -z $real_data ]] && echo "phantom datasets ($DATA_DIR)" || echo "real data")
[[ -n $DRY_RUN ]] && data_label="phantom data in the real layouts ($DATA_DIR/dry), dry run"
$PY -m ctranscnn.report.assemble --results "$RESULTS_DIR" --figures "$FIGURES_DIR" --profile "$PROFILE" \
    --data "$data_label" --split "$SPLIT" --seeds "$SEEDS" ${DRY_RUN:+--dry-run} || die "report assembly"

cat <<MSG

== done in $(( ($(date +%s) - t0) / 60 )) min $(( ($(date +%s) - t0) % 60 )) s (profile $PROFILE)
   tables:     $RESULTS_DIR/tables/   (CSV = source of truth, .md, .tex)
   figures:    $FIGURES_DIR/          (.png, .pdf)
   notebooks:  $RESULTS_DIR/executed/ (.ipynb, .html)
   runs:       $RUNS_DIR/             (manifests, predictions, checkpoints)
   report:     $RESULTS_DIR/REPORT.md
MSG
