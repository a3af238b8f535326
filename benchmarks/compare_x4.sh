#!/usr/bin/env bash
# The fair comparison: the single 16-8w48 baseline and the MMSR
# bundle of compact class models, trained at the same time (one core each,
# OMP_NUM_THREADS=1) for the same CPU budget, then evaluated.
#
#   benchmarks/compare_x4.sh DATA_ROOT RUNS_DIR    # e.g. benchmarks/compare_x4.sh data output: train
#                                                  # (resumes if rerun), calibrate, evaluate
#
# DATA_ROOT holds train/T91/HR, train/BSD200/HR, val/Set5 (training-time
# validation and routing calibration only), val/Set14 (reported). Writes
# RUNS_DIR/split_x4_s128, RUNS_DIR/compare_{single,mmsr}_x4 (runs, bundles),
# *.log, *.time (GNU time -v of each training process, appended per
# invocation: CPU seconds), the MMSR bundle with calibrated routing
# (RUNS_DIR/compare_mmsr_x4/bundle_routed: Set5 + 60 BSD200 images + 4
# synthetic drawings; nothing that is reported) and
# RUNS_DIR/compare_x4_eval.{json,md} (Set14 and held-out scikit-image photos).
# About an hour of training on two idle cores, then ~10 minutes.
set -uo pipefail
if [ $# -ne 2 ]; then
  sed -n '2,17p' "$0"; exit 2
fi
DATA=$1
RUNS=$2
HERE=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's package
SPLIT=$RUNS/split_x4_s128
mkdir -p "$RUNS"
export OMP_NUM_THREADS=1
if [ ! -f "$SPLIT/split.yaml" ]; then
  python "$HERE/tools/split_tvat.py" "$DATA/train/T91/HR" "$DATA/train/BSD200/HR" "$SPLIT" \
    --sub-size 128 --step 128 --calibrate 3 || exit 1
fi
train() {  # name, extra overrides...; a finished run (bundle written) is left alone
  local name=$1; shift
  [ -f "$RUNS/$name/bundle/manifest.yaml" ] && return 0
  /usr/bin/time -v -a -o "$RUNS/$name.time" \
    python "$HERE/tools/train.py" -c "$HERE/benchmarks/configs/$name.yaml" -o "output=$RUNS/$name" \
    -o "val.dir=$DATA/val/Set5" "$@" >> "$RUNS/$name.log" 2>&1
}
train compare_single_x4 -o "data.sources=[$SPLIT/all.tsv]" &
single=$!
train compare_mmsr_x4 -o "data.split=$SPLIT" &
mmsr=$!
wait $single; rs=$?
wait $mmsr; rm=$?
if [ $rs -ne 0 ] || [ $rm -ne 0 ]; then
  echo "training failed (single $rs, mmsr $rm); see $RUNS/compare_*_x4.log" >&2; exit 1
fi
ROUTED=$RUNS/compare_mmsr_x4/bundle_routed
rm -rf "$ROUTED" && mkdir -p "$ROUTED" && cp "$RUNS"/compare_mmsr_x4/bundle/{manifest.yaml,*.pdparams} "$ROUTED"/
python -m paddle_mmsr.cli.calibrate "$ROUTED" "$DATA/val/Set5" "$DATA/train/BSD200" \
  --max-images 60 --max-loss-db 0.03 --rules cell_max:32 cell_max:64 tile --grids 128:16 64:8 \
  --guard-pages 4 --guard-max-loss-db 0.1 --write --json "$RUNS/compare_mmsr_x4_calibration.json" \
  || exit 1
python "$HERE/benchmarks/compare_eval.py" --mmsr "$ROUTED" --tile-rule \
  --single "$RUNS/compare_single_x4/bundle" --set14 "$DATA/val/Set14" \
  --times "$RUNS/compare_single_x4.time" "$RUNS/compare_mmsr_x4.time" \
  --out "$RUNS/compare_x4_eval"
