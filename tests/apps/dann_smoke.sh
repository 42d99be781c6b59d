#!/usr/bin/env bash
# End-to-end smoke test of cvg-dann on a tiny setting (seconds on a CPU): train in each mode
# (dann with a checkpoint and a resume), eval, show, table (the seed study) and export must
# succeed and write what they promise; bad invocations must fail with exit code 2 before writing
# anything.
# Needs the real data (scripts/fetch-data): the repository's data/ folder, or CVG_DATA_DIR.
# Without it (a fresh clone, CI) the test reports itself skipped (exit code 77) and says why.
# Usage: dann_smoke.sh PATH/TO/cvg-dann
set -euo pipefail
bin="$1"
here="$(cd "$(dirname "$0")" && pwd)"
data="${CVG_DATA_DIR:-$here/../../data}"
test -f "$data/mnist-json/0.json" || { echo "dann smoke: skipped: no MNIST JSON under $data (run scripts/fetch-data)"; exit 77; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tiny=(--device cpu --data-dir "$data" --train-images 64 --test-images 32 --batch-size 8)

# (through a file: grep -q stops reading at the first match, and under pipefail the writer's
# SIGPIPE would fail the test whenever the help text outgrows the pipe buffer's first read)
"$bin" --help > "$work/help.txt"
grep -q "source-only" "$work/help.txt"
"$bin" train "${tiny[@]}" --mode dann --steps 6 --checkpoint-every 2 --eval-every 2 --pad-images 16 \
  --out "$work/dann" > "$work/train.log"
grep -q "final loss" "$work/train.log"
for f in config.json metrics.jsonl loss.svg accuracy.svg eval.json checkpoint.safetensors; do
  test -s "$work/dann/$f" || { echo "train did not write $f"; exit 1; }
done
test "$(wc -l < "$work/dann/metrics.jsonl")" -eq 6
# Another --steps would change lr_p and lambda_p = f(step / steps) mid-run: refused.
set +e
"$bin" train "${tiny[@]}" --mode dann --steps 8 --checkpoint-every 2 --eval-every 2 --pad-images 16 \
  --out "$work/dann" --resume "$work/dann/checkpoint.safetensors" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q -- "--steps 6 (now 8)" "$work/err.log" && grep -q "fractions of --steps" "$work/err.log"
test "$(wc -l < "$work/dann/metrics.jsonl")" -eq 6
# An interrupted run (Ctrl-C once two steps are logged) goes on to its own --steps.
int=(--mode dann --steps 60 --checkpoint-every 2 --eval-every 30 --pad-images 0 --no-svm --out "$work/int")
python3 - "$work/int/metrics.jsonl" "$bin" train "${tiny[@]}" "${int[@]}" <<'PY'
import os, signal, subprocess, sys, time
metrics, cmd = sys.argv[1], sys.argv[2:]
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + 120
while p.poll() is None and time.time() < deadline:
    if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 2:
        break
    time.sleep(0.005)
p.send_signal(signal.SIGINT)
assert p.wait() == 130, "the interrupted run should exit 130"
PY
test "$(wc -l < "$work/int/metrics.jsonl")" -lt 60
"$bin" train "${tiny[@]}" "${int[@]}" --resume "$work/int/checkpoint.safetensors" > "$work/resume.log"
test "$(wc -l < "$work/int/metrics.jsonl")" -eq 60
"$bin" train "${tiny[@]}" --mode source-only --steps 3 --pad-images 0 --out "$work/src" > /dev/null
"$bin" train "${tiny[@]}" --mode target-only --steps 3 --pad-images 0 --out "$work/tgt" > /dev/null
# The domain branch's options: the thesis's summed domain loss with clipping logs the norm before
# clipping; outside dann they are refused (exit code 2, nothing written).
"$bin" train "${tiny[@]}" --mode dann --steps 2 --pad-images 0 --domain-loss sum --clip-grad-norm 1 \
  --out "$work/sum" > /dev/null
python3 - "$work/sum/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2 and all(r["grad_norm"] > 0 for r in rows), rows
PY
set +e
"$bin" train "${tiny[@]}" --mode source-only --steps 2 --clip-grad-norm 1 --out "$work/bad3" > /dev/null 2> "$work/err.log"
code=$?
set -e
test "$code" -eq 2 && test ! -e "$work/bad3" && grep -q "apply to --mode dann only" "$work/err.log"

# A wider domain classifier is rebuilt from the run's config by eval.
"$bin" train "${tiny[@]}" --mode dann --steps 2 --pad-images 0 --domain-hidden 16,8 --out "$work/wide" > /dev/null
"$bin" eval --device cpu --out "$work/wide" --pad-images 16 > /dev/null
grep -q '"domain-hidden": *"16,8"' "$work/wide/config.json"

"$bin" eval --device cpu --out "$work/dann" --pad-images 16 > "$work/eval.log"
python3 - "$work/dann/eval.json" "$work/dann/metrics.jsonl" <<'PY'
import json, math, sys
e = json.load(open(sys.argv[1]))
for key in ("source_accuracy", "target_accuracy", "proxy_a_distance"):
    assert key in e and math.isfinite(e[key]), key
assert 0 <= e["source_accuracy"] <= 1 and 0 <= e["target_accuracy"] <= 1
assert e["mode"] == "dann" and e["steps"] == 6 and e["test_images"] == 32
# The thesis's protocol: the last layer retrained as a linear SVM on the source digits.
s = e["svm"]
assert s["trained_on"] == "source" and s["c"] in s["c_grid"], s
assert len(s["validation_accuracy"]) == len(s["c_grid"]), s
assert 0 <= s["source_accuracy"] <= 1 and 0 <= s["target_accuracy"] <= 1, s
rows = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
assert all(0 <= r["lambda"] < 1 and "domain_loss" in r for r in rows)
assert rows[0]["lambda"] == 0 and rows[-1]["lambda"] > rows[1]["lambda"]
assert all("target_accuracy" in rows[i] for i in (1, 3, 5))
PY

"$bin" show --device cpu --out "$work/dann" --before "$work/src" --points 16 --count 4 > "$work/show.log"
head -c 8 "$work/dann/mnistm_preview.png" | od -An -c | grep -q "P   N   G" || { echo "show: no PNG"; exit 1; }
grep -q "<svg" "$work/dann/features_pca.svg"
test "$(grep -o "<circle" "$work/dann/features_pca.svg" | wc -l)" -eq $((2 * (32 + 2)))

# The seed table: three 3-step runs (one per mode, different seeds) in one study folder.
mkdir "$work/study"
mv "$work/src" "$work/study/source-only-s1"
mv "$work/tgt" "$work/study/target-only-s1"
"$bin" train "${tiny[@]}" --mode dann --steps 3 --seed 2 --pad-images 0 --out "$work/study/dann-s2" > /dev/null
mkdir "$work/study/unfinished"
"$bin" table --out "$work/study" > "$work/table.log"
grep -q "skipped .*unfinished: no eval.json" "$work/table.log"
grep -q "^| dann | 2 | " "$work/study/table.md"
grep -q "^| source-only | 1 | " "$work/study/table.md"
grep -q "share of the gap to train-on-target closed" "$work/study/table.md"
grep -q "linear SVM" "$work/study/table.md"
test "$(grep -c "share of the gap" "$work/study/table.md")" -eq 2
python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["svm"]["trained_on"] == "target"' \
  "$work/study/target-only-s1/eval.json"
# An eval.json without the SVM (--no-svm): the table says so instead of its SVM rows.
"$bin" eval --device cpu --out "$work/study/dann-s2" --pad-images 0 --no-svm > /dev/null
if grep -q '"svm"' "$work/study/dann-s2/eval.json"; then echo "eval --no-svm wrote svm"; exit 1; fi
"$bin" table --out "$work/study" > /dev/null
grep -q "no linear-SVM rows" "$work/study/table.md"
# Folders that are not finished, current runs of this app are skipped, each with its reason:
# another app's run, and an eval.json of another step than the checkpoint (an old evaluation).
cp -r "$work/study/dann-s2" "$work/study/other-app"
cp -r "$work/study/dann-s2" "$work/study/stale-s8"
python3 - "$work/study" <<'PY'
import json, sys
def edit(path, **kw):
    d = json.load(open(path)); d.update(kw); json.dump(d, open(path, "w"))
edit(f"{sys.argv[1]}/other-app/eval.json", app="cvg-landmarks")
edit(f"{sys.argv[1]}/stale-s8/eval.json", steps=99)
edit(f"{sys.argv[1]}/stale-s8/config.json", seed=8)
PY
# A folder trained again (--overwrite) whose new run ended before its evaluation: its eval.json
# scores the old checkpoint. A diverged run: its eval.json says so and has no proxy A-distance.
# An eval.json that is not JSON, a folder without config.json: skipped, not fatal.
"$bin" train "${tiny[@]}" --mode dann --steps 3 --seed 4 --pad-images 0 --out "$work/study/retrained-s4" > /dev/null
cp "$work/study/retrained-s4/eval.json" "$work/old-eval.json"
"$bin" train "${tiny[@]}" --mode dann --steps 3 --seed 4 --lr 0.02 --pad-images 0 --overwrite \
  --out "$work/study/retrained-s4" > /dev/null
cp "$work/old-eval.json" "$work/study/retrained-s4/eval.json"
set +e
"$bin" train "${tiny[@]}" --mode dann --steps 3 --seed 5 --lr 1e30 --momentum 0.999 --pad-images 16 \
  --out "$work/study/diverged-s5" > /dev/null 2>&1; code=$?
set -e
test "$code" -eq 1
python3 - "$work/study/diverged-s5/eval.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
# (NaN weights: NaN features, or all-zero ones where a ReLU maps NaN to 0)
assert e["diverged"] is True and e["proxy_a_distance"] is None and e["proxy_a_note"], e
PY
cp -r "$work/study/dann-s2" "$work/study/broken"
echo "{" > "$work/study/broken/eval.json"
cp -r "$work/study/dann-s2" "$work/study/no-config"
rm "$work/study/no-config/config.json"
"$bin" table --out "$work/study" > "$work/table.log"
grep -q "skipped .*other-app: a run of cvg-landmarks" "$work/table.log"
grep -q "skipped .*stale-s8: eval.json scores step 99, the checkpoint is at step 3" "$work/table.log"
grep -q "skipped .*retrained-s4: eval.json scores another checkpoint" "$work/table.log"
grep -q "skipped .*diverged-s5: diverged" "$work/table.log"
grep -q "skipped .*broken: eval.json is not a JSON object" "$work/table.log"
grep -q "skipped .*no-config: cannot read config.json" "$work/table.log"
grep -q "^| dann | 2 | " "$work/study/table.md"
rm -r "$work/study/other-app" "$work/study/stale-s8" "$work/study/retrained-s4" "$work/study/diverged-s5" \
  "$work/study/broken" "$work/study/no-config"
# A study of the domain branch's flags reuses the baselines: they are compared between dann
# runs only.
"$bin" train "${tiny[@]}" --mode dann --steps 3 --seed 6 --pad-images 0 --domain-hidden 16,16 \
  --out "$work/study2/dann-s6" > /dev/null
ln -s "$work/study/source-only-s1" "$work/study2/source-only-s1"
"$bin" table --out "$work/study2" > /dev/null
grep -q "^| source-only | 1 | " "$work/study2/table.md"
cp -r "$work/study/dann-s2" "$work/study2/dann-s2"
set +e
"$bin" table --out "$work/study2" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q -- "--domain-hidden" "$work/err.log"
# eval finds moved data with --data-dir; the SVM's need of 10 images is checked before training.
mkdir "$work/elsewhere" && (cd "$work/elsewhere" && \
  "$bin" eval --device cpu --out "$work/study/dann-s2" --pad-images 0 --no-svm --data-dir "$data" > /dev/null)
set +e
"$bin" train "${tiny[@]}" --train-images 9 --batch-size 4 --steps 2 --out "$work/svm9" > /dev/null 2> "$work/err.log"
code=$?
set -e
test "$code" -eq 2 && grep -q "at least 10 training images" "$work/err.log" && test ! -e "$work/svm9"
# Runs of another length or on other data do not make one table.
cp -r "$work/dann" "$work/study/dann-s1"
set +e
"$bin" table --out "$work/study" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q "are not runs of one study (.*--steps 6 vs 3" "$work/err.log"
rm -r "$work/study/dann-s1"
cp -r "$work/study/dann-s2" "$work/study/dann-s3"
python3 - "$work/study/dann-s3/config.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["seed"] = 3; d["data-seed"] = 5; json.dump(d, open(sys.argv[1], "w"))
PY
set +e
"$bin" table --out "$work/study" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q "dann-s2 and dann-s3 are not runs of one study (--data-seed 0 vs 5)" \
  "$work/err.log"

# export: the tensors of train, readable as .npy.
"$bin" export --data-dir "$data" --train-images 64 --test-images 32 --out "$work/npy" > /dev/null
python3 - "$work/npy" <<'PY'
import struct, sys
for name, shape in (("source_train_x", "(64, 3, 28, 28)"), ("target_test_y", "(32,)"), ("mean", "(3,)")):
    head = open(f"{sys.argv[1]}/{name}.npy", "rb").read(128)
    assert head[:6] == b"\x93NUMPY" and shape.encode() in head, (name, head)
PY

# Bad input: exit code 2 and nothing written.
set +e
"$bin" train --mode dan --out "$work/bad" > /dev/null 2>&1; code=$?
set -e
test "$code" -eq 2 && test ! -e "$work/bad"
set +e
"$bin" train "${tiny[@]}" --data-dir "$work/no-data" --out "$work/bad2" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && test ! -e "$work/bad2" && grep -q "scripts/fetch-data" "$work/err.log"
set +e
"$bin" eval --device cpu --out "$work/missing" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q "no checkpoint" "$work/err.log"
echo "dann smoke test passed"
