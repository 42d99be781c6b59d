#!/usr/bin/env bash
# End-to-end smoke test of cvg-deepmatch on tiny inputs (seconds on a CPU): match two images
# with the fixed HOG descriptor, train the CNN and nu for a few steps (with a checkpoint, an
# interruption-free resume and frozen groups), eval untrained and trained models on a few
# held-out pairs and the motorcycle pair; bad invocations fail with exit code 2, writing nothing.
# Needs the real data (scripts/fetch-data): the repository's data/ folder, or CVG_DATA_DIR.
# Without it (a fresh clone, CI) the test reports itself skipped (exit code 77) and says why.
# Usage: deepmatch_smoke.sh PATH/TO/cvg-deepmatch
# CVG_SMOKE_DEVICE=cuda runs train and eval on the GPU (match stays on the CPU); default cpu.
set -euo pipefail
bin="$1"
here="$(cd "$(dirname "$0")" && pwd)"
data="${CVG_DATA_DIR:-$here/../../data}"
test -f "$data/fashion-mnist/t10k-images-idx3-ubyte.gz" && test -f "$data/skimage/motorcycle_left.png" ||
  { echo "deepmatch smoke: skipped: no Fashion-MNIST / skimage data under $data (run scripts/fetch-data)"; exit 77; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tiny=(--device "${CVG_SMOKE_DEVICE:-cpu}" --data-dir "$data" --width 48 --height 40)

"$bin" --help > "$work/help.txt"
grep -q "match IMG1 IMG2" "$work/help.txt"

# match: positional images, matches in DeepMatching's format, both PNGs.
"$bin" match "$data/opencv/rubberwhale1.png" "$data/opencv/rubberwhale2.png" --device cpu --scale 8 \
  --radius 8 --out "$work/match" > "$work/match.log"
grep -q "reciprocal matches" "$work/match.log"
for f in matches.txt matches_all.txt matches.png flow.png match.json; do
  test -s "$work/match/$f" || { echo "match did not write $f"; exit 1; }
done
grep -q "^time .* s on cpu (descriptors" "$work/match.log"
python3 - "$work/match/match.json" "$work/match/matches.txt" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
t = m["seconds"]
assert t["total"] > 0 and abs(t["total"] - sum(t[k] for k in ("descriptors", "forward", "backward", "readout"))) < 1e-9
assert m["verified"] == sum(1 for _ in open(sys.argv[2])) and m["reference_points"] >= m["verified"]
assert m["radius"] == 8 and m["device"] == "cpu"
PY
awk 'NF != 5 { exit 1 }' "$work/match/matches.txt"
test "$(wc -l < "$work/match/matches.txt")" -le "$(wc -l < "$work/match/matches_all.txt")"

# train: CNN + nu, a checkpoint, then a resume to more steps.
"$bin" train "${tiny[@]}" --steps 2 --batch-size 1 --radius 6 --levels 2 --val-pairs 2 --eval-every 1 \
  --checkpoint-every 1 --out "$work/both" > "$work/train.log"
grep -q "final loss" "$work/train.log"
for f in config.json metrics.jsonl loss.svg nu.svg val.svg checkpoint.safetensors; do
  test -s "$work/both/$f" || { echo "train did not write $f"; exit 1; }
done
"$bin" train "${tiny[@]}" --steps 3 --batch-size 1 --radius 6 --levels 2 --val-pairs 0 --out "$work/both" \
  --resume "$work/both/checkpoint.safetensors" > /dev/null
"$bin" train "${tiny[@]}" --descriptor hog --steps 1 --batch-size 1 --radius 6 --levels 2 --val-pairs 0 \
  --out "$work/hog-nu" > /dev/null
"$bin" train "${tiny[@]}" --no-learn-nu --steps 1 --batch-size 1 --radius 6 --levels 2 --val-pairs 0 \
  --out "$work/feat" > /dev/null

# eval: untrained rows and run folders, synthetic and real.
"$bin" eval "${tiny[@]}" --rows "hog,cnn,$work/both,$work/hog-nu" --pairs 2 --real motorcycle --real-scale 8 \
  --real-radius 8 --levels 2 --out "$work/eval" > "$work/eval.log"
grep -q "| hog | hog | no | no |" "$work/eval.log"
python3 - "$work/eval/eval.json" "$work/both/metrics.jsonl" "$work/hog-nu/metrics.jsonl" <<'PY'
import json, math, sys
e = json.load(open(sys.argv[1]))
assert e["pairs"] == 2 and len(e["rows"]) == 4
for r in e["rows"]:
    for part in ("synthetic", "motorcycle"):
        s = r[part]
        for k in ("acc2", "acc5", "acc10", "epe_flow", "epe_matches"):
            assert math.isfinite(s[k]), (r["model"], part, k)
        assert 0 <= s["acc2"] <= s["acc5"] <= s["acc10"] <= 100
        assert s["seconds_per_pair"] > 0, (r["model"], part)
both = e["rows"][2]
assert both["learn_nu"] and both["learn_features"] and both["steps"] == 3
assert not e["rows"][3]["learn_features"] and e["rows"][3]["descriptor"] == "hog"
rows = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in rows] == [0, 1, 2, 3], [r["step"] for r in rows]
assert all(math.isfinite(r.get("loss", 0)) for r in rows)
assert rows[-1]["nu0"] != 1.4  # the optimizer updates the parameters the model computes with
nu = [json.loads(l) for l in open(sys.argv[3])]
assert nu[-1]["nu0"] != 1.4  # the only trainable parameter moved
PY

# Bad input: exit code 2 and nothing written.
set +e
"$bin" train "${tiny[@]}" --descriptor hog --no-learn-nu --out "$work/bad" > /dev/null 2>&1; code=$?
set -e
test "$code" -eq 2 && test ! -e "$work/bad"
set +e
"$bin" eval "${tiny[@]}" --data-dir "$work/no-data" --out "$work/bad2" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && test ! -e "$work/bad2" && grep -q "scripts/fetch-data" "$work/err.log"
set +e
"$bin" match "$work/none1.png" "$work/none2.png" --out "$work/bad3" > /dev/null 2>&1; code=$?
set -e
test "$code" -eq 2 && test ! -e "$work/bad3"
img1="$data/opencv/rubberwhale1.png" img2="$data/opencv/rubberwhale2.png"
for bad in "$img1" "$img1 $img2 --image1 $img2" "$img1 $img2 --scale 4096" "$img1 $img2 --levels 8"; do
  set +e
  # shellcheck disable=SC2086  # the cases are word lists
  "$bin" match $bad --out "$work/bad4" > /dev/null 2> "$work/err.log"; code=$?
  set -e
  test "$code" -eq 2 && test ! -e "$work/bad4" && test "$(wc -l < "$work/err.log")" -eq 1 ||
    { echo "match $bad: exit $code"; cat "$work/err.log"; exit 1; }
done
echo "deepmatch smoke: ok"
