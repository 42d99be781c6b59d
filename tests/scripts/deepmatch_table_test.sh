#!/usr/bin/env bash
# scripts/deepmatch-table: its summary of hand-written eval.json files (known means, sample
# standard deviations and gate counts), its argument errors, and, when the real data is there
# (scripts/fetch-data), a tiny study end to end: two seeds trained and scored, then run again
# to check that finished run folders are reused, not retrained.
# Usage: deepmatch_table_test.sh REPO_ROOT PATH/TO/cvg-deepmatch
set -euo pipefail
root="$1"; bin="$2"
script="$root/scripts/deepmatch-table"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Two seeds of six rows; synthetic acc@10 of seed 1: 90 91 80 80 92 93, seed 2: 90 89 82 83 82 84
# (a tie of (e) and (c) in seed 2: the gate (e) > (c) is strict).
python3 - "$work/hand" <<'PY'
import json, os, sys
acc10 = {1: [90, 91, 80, 80, 92, 93], 2: [90, 89, 82, 83, 82, 84]}
names = ["hog", "hog-nu", "cnn", "cnn-nu", "cnn-feat", "cnn-both"]
for seed, values in acc10.items():
    rows = []
    for i, v in enumerate(values):
        m = {"acc2": v - 40, "acc5": v - 20, "acc10": v, "epe_matches": 2.0 + seed, "epe_flow": 3.0}
        rows.append({"model": names[i], "synthetic": m, "motorcycle": dict(m, acc10=50 + seed)})
    os.makedirs(f"{sys.argv[1]}/seed-{seed}/table")
    json.dump({"rows": rows}, open(f"{sys.argv[1]}/seed-{seed}/table/eval.json", "w"))
os.makedirs(f"{sys.argv[1]}/seed-x/table")  # not seed folders: ignored
os.makedirs(f"{sys.argv[1]}/copy-9/table")
json.dump({"rows": rows}, open(f"{sys.argv[1]}/copy-9/table/eval.json", "w"))
PY
"$script" --summarize-only --out "$work/hand" > "$work/hand.md"
cat "$work/hand.md"
grep -q "^Mean +- sample standard deviation over 2 seed(s) (1, 2)" "$work/hand.md"
# (c): acc@10 80, 82 -> mean 81, sd sqrt(2); EPE matches 3, 4 -> 3.5 +- 0.71.
grep -q "^| (c) | cnn | 41.00 +- 1.41 | 61.00 +- 1.41 | 81.00 +- 1.41 | 3.50 +- 0.71 | 3.00 +- 0.00 |$" "$work/hand.md"
grep -q "^| (a) | hog | 50.00 +- 0.00 | 70.00 +- 0.00 | 90.00 +- 0.00 |" "$work/hand.md"
grep -q "^motorcycle:" "$work/hand.md"
test "$(grep -c "| 51.50 +- 0.71 |" "$work/hand.md")" -eq 6   # motorcycle acc@10: 51, 52
grep -q "^Gates on synthetic acc@10, seeds where they hold: (e) > (c) 1/2, (f) > (c) 2/2, (b) >= (a) 1/2, (d) >= (c) 2/2, (f) >= (e) 2/2$" "$work/hand.md"
python3 - "$work/hand/table.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
assert t["seeds"] == [1, 2], t["seeds"]
assert abs(t["rows"]["f"]["synthetic"]["acc10"]["mean"] - 88.5) < 1e-12
assert abs(t["rows"]["f"]["synthetic"]["acc10"]["sd"] - 2 ** 0.5 * 4.5) < 1e-12
assert t["gates"]["(e) > (c)"] == {"held": 1, "of": 2}
PY

# Errors: exit code 2 with the argument named, or a message saying what is missing.
set +e
"$script" --seeds 1,x --summarize-only --out "$work/hand" > /dev/null 2> "$work/err1.txt"; c1=$?
"$script" --seeds 1,1 --summarize-only --out "$work/hand" > /dev/null 2> "$work/err2.txt"; c2=$?
"$script" --steps 0 --summarize-only --out "$work/hand" > /dev/null 2> "$work/err3.txt"; c3=$?
"$script" --bin "$work/none" --out "$work/new" > /dev/null 2> "$work/err4.txt"; c4=$?
"$script" --summarize-only --out "$work/empty" > /dev/null 2> "$work/err5.txt"; c5=$?
"$script" --nu-lr -1 --summarize-only --out "$work/hand" > /dev/null 2> "$work/err6.txt"; c6=$?
set -e
test "$c1" -eq 2 && grep -q "\-\-seeds: expected distinct non-negative integers" "$work/err1.txt"
test "$c2" -eq 2 && grep -q "got '1,1'" "$work/err2.txt"
test "$c3" -eq 2 && grep -q "\-\-steps" "$work/err3.txt"
test "$c4" -eq 2 && grep -q "is not an executable" "$work/err4.txt"
test "$c5" -ne 0 && grep -q "no OUT/seed-\*/table/eval.json" "$work/err5.txt"
test "$c6" -eq 2 && grep -q "\-\-nu-lr: expected a finite number > 0, got '-1'" "$work/err6.txt"

data="${CVG_DATA_DIR:-$root/data}"
if test -f "$data/fashion-mnist/t10k-images-idx3-ubyte.gz"; then
  tiny=(--batch-size 1 --pairs 2 --real "" --bin "$bin" --out "$work/study"
        -- --data-dir "$data" --width 48 --height 40 --radius 6 --levels 2)
  "$script" --seeds 3,4 --steps 2 "${tiny[@]}" > "$work/study.log"
  test "$(grep -c "training" "$work/study.log")" -eq 8
  grep -q "^| (f) | cnn-both |" "$work/study.log"
  python3 - "$work/study" <<'PY'
import json, sys
t = json.load(open(sys.argv[1] + "/table.json"))
assert t["seeds"] == [3, 4] and set(t["rows"]) == set("abcdef") and "motorcycle" not in t["rows"]["a"]
for seed in (3, 4):
    rows = json.load(open(f"{sys.argv[1]}/seed-{seed}/table/eval.json"))["rows"]
    assert [r["steps"] for r in rows] == [0, 2, 0, 2, 2, 2], rows
    assert [(r["learn_nu"], r["learn_features"]) for r in rows[1:]] == \
        [(True, False), (False, False), (True, False), (False, True), (True, True)]
    lrs = [json.load(open(f"{sys.argv[1]}/seed-{seed}/{name}/config.json"))["lr"]
           for name in ("hog-nu", "cnn-nu", "cnn-feat", "cnn-both")]
    assert lrs == [0.01, 0.01, 0.001, 0.001], lrs  # --nu-lr for the nu-only rows
PY
  # Again with one more seed: seeds 3 and 4 are reused (only seed 5 trains), all three summarised.
  "$script" --seeds 3,4,5 --steps 2 "${tiny[@]}" > "$work/again.log"
  test "$(grep -c "training" "$work/again.log")" -eq 4
  grep -q "over 3 seed(s) (3, 4, 5)" "$work/again.log"
  # A subset of the seeds there: nothing trains, only those seeds are summarised.
  "$script" --seeds 4 --steps 2 "${tiny[@]}" > "$work/one.log"
  test "$(grep -c "training" "$work/one.log")" -eq 0
  grep -q "over 1 seed(s) (4)" "$work/one.log"
  # Other --steps: that seed's runs train again.
  "$script" --seeds 4 --steps 3 "${tiny[@]}" > "$work/steps.log"
  test "$(grep -c "training" "$work/steps.log")" -eq 4
else
  echo "deepmatch-table: end-to-end part skipped: no Fashion-MNIST under $data"
fi
echo "deepmatch-table test passed"
