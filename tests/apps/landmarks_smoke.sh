#!/usr/bin/env bash
# End-to-end smoke test of cvg-landmarks on a tiny setting (seconds on a CPU): train (with a
# checkpoint and a resume), fit-regressor, eval and show must all succeed and write what they
# promise; a run folder is neither replaced nor resumed with other flags by accident; bad
# invocations must fail with exit code 2 before writing anything.
# Usage: landmarks_smoke.sh PATH/TO/cvg-landmarks
set -euo pipefail
bin="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run="$work/run"
tiny=(--device cpu --train-images 48 --test-images 12 --image-size 16 --crop 4 --landmarks 4
      --width 0.25 --batch-size 4 --checkpoint-every 3 --lr-drop 1 --data-dir "$work/no-data")

"$bin" --help > "$work/help.txt"  # a file, not a pipe: grep -q + pipefail can fail on SIGPIPE
grep -q "fit-regressor" "$work/help.txt"
"$bin" train "${tiny[@]}" --steps 4 --out "$run" > "$work/train.log"
grep -q "final loss" "$work/train.log"
for f in config.json metrics.jsonl loss.svg checkpoint.safetensors; do
  test -s "$run/$f" || { echo "train did not write $f"; exit 1; }
done
test "$(wc -l < "$run/metrics.jsonl")" -eq 4
# (a longer run continues while neither schedule has dropped the rate: --lr-drop 1 drops after
# the last step; with the rate dropped after step 2 of 4, going on to 6 steps is refused)
"$bin" train "${tiny[@]}" --steps 6 --out "$run" --resume "$run/checkpoint.safetensors" > "$work/resume.log"
test "$(wc -l < "$run/metrics.jsonl")" -eq 6
"$bin" train "${tiny[@]}" --steps 4 --lr-drop 0.5 --out "$work/drop" > /dev/null
set +e
"$bin" train "${tiny[@]}" --steps 6 --lr-drop 0.5 --out "$work/drop" --resume "$work/drop/checkpoint.safetensors" \
  > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q "its learning rate dropped after step 2" "$work/err.log"

"$bin" fit-regressor --device cpu --out "$run" --labelled 1,all --labelled-images 12 > "$work/fit.log"
test -s "$run/regressor_1.safetensors" && test -s "$run/regressor_12.safetensors"

"$bin" eval --device cpu --out "$run" --test-images 12 --warp-pairs 6 > "$work/eval.log"
python3 - "$run/eval.json" <<'PY'
import json, math, sys
e = json.load(open(sys.argv[1]))
for key in ("equivariance_error_output_px", "mean_shape_error_iod", "regressors"):
    assert key in e, key
assert math.isfinite(e["equivariance_error_output_px"]) and e["equivariance_error_output_px"] >= 0
assert [r["labelled_images"] for r in e["regressors"]] == [1, 12]
assert len(e["equivariance_error_per_landmark"]) == 4 and len(e["map_spread_per_landmark_output_px"]) == 4
assert e["equivariance_error_median_px"] <= e["equivariance_error_p90_px"]
assert all(math.isfinite(r["error_iod"]) and r["error_iod"] > 0 for r in e["regressors"])
PY

"$bin" show --device cpu --out "$run" --count 4 --zoom 2 > "$work/show.log"
for f in landmarks.png heatmaps.png; do
  head -c 8 "$run/$f" | od -An -c | grep -q "P   N   G" || { echo "show: $f is not a PNG"; exit 1; }
done

# A run folder is not replaced by accident, nor resumed with other flags, and eval uses only
# regressors fitted to the folder's current detector (other regressor_* names are ignored).
cp "$run/regressor_1.safetensors" "$run/regressor_old.safetensors"
set +e
"$bin" train "${tiny[@]}" --steps 4 --out "$run" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q "already holds a run" "$work/err.log"
test "$(wc -l < "$run/metrics.jsonl")" -eq 6
set +e
"$bin" train "${tiny[@]}" --steps 8 --landmarks 5 --out "$run" --resume "$run/checkpoint.safetensors" \
  > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q -- "--landmarks 4 (now 5)" "$work/err.log"
"$bin" train "${tiny[@]}" --steps 2 --out "$run" --overwrite > /dev/null
test "$(wc -l < "$run/metrics.jsonl")" -eq 2
set +e
"$bin" eval --device cpu --out "$run" --test-images 12 --warp-pairs 6 > /dev/null 2> "$work/err.log"
code=$?
set -e
test "$code" -eq 2 && grep -q "belong to an earlier detector" "$work/err.log"
"$bin" fit-regressor --device cpu --out "$run" --labelled 5 --labelled-images 12 > /dev/null
"$bin" eval --device cpu --out "$run" --test-images 12 --warp-pairs 6 > /dev/null 2> "$work/err.log"
grep -q "left out regressor_1.safetensors, regressor_12.safetensors" "$work/err.log"
python3 -c "import json,sys; e=json.load(open(sys.argv[1])); \
assert [r['labelled_images'] for r in e['regressors']] == [5], e['regressors']" "$run/eval.json"

# Commands that open the run see the images it trained on: a --data-dir with photos (a picture of
# the docs as the only "photo") would swap the procedural backgrounds for real ones: refused.
mkdir -p "$work/photos/opencv"
cp "$(dirname "$0")/../../docs/images/synth_faces.png" "$work/photos/opencv/"
set +e
"$bin" show --device cpu --out "$run" --count 2 --data-dir "$work/photos" > /dev/null 2> "$work/err.log"
code=$?
set -e
test "$code" -eq 2 && grep -q "was trained on synthetic faces (.*procedural backgrounds)" "$work/err.log"
grep -q "gives synthetic faces (.*real-photo backgrounds)" "$work/err.log"

# Bad input: exit code 2 and nothing written.
set +e
"$bin" train --steps 0 --out "$work/bad" > /dev/null 2>&1; code=$?
set -e
test "$code" -eq 2 && test ! -e "$work/bad"
set +e
"$bin" eval --device cpu --out "$work/missing" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q "no checkpoint" "$work/err.log"
echo "landmarks smoke test passed"
