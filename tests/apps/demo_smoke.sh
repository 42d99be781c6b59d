#!/usr/bin/env bash
# End-to-end smoke test of cvg-demo (seconds on a CPU): a short run learns the spirals and
# writes its folder; a one-step run and a resumed run exit 0; a diverged run exits 1 and says
# why; --resume neither replaces another run's folder nor loses the curve in a new folder.
# Usage: demo_smoke.sh PATH/TO/cvg-demo
set -euo pipefail
bin="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tiny=(--device cpu --points 60 --hidden 32 --checkpoint-every 50)

"$bin" "${tiny[@]}" --steps 150 --out "$work/a" > "$work/a.log"
for f in config.json metrics.jsonl loss.svg checkpoint.safetensors; do
  test -s "$work/a/$f" || { echo "train did not write $f"; exit 1; }
done
python3 - "$work/a.log" "$work/a/metrics.jsonl" <<'PY'
import json, re, sys
first, last, acc = map(float, re.search(r"loss ([\d.]+) -> ([\d.]+), training accuracy ([\d.]+)%",
                                        open(sys.argv[1]).read()).groups())
assert last < 0.8 * first and acc > 50, (first, last, acc)  # chance: loss 1.1, accuracy 33 %
rows = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in rows] == list(range(1, 151)), len(rows)
PY
"$bin" "${tiny[@]}" --steps 1 --out "$work/one" > /dev/null  # exit 0 although nothing fell yet
# Continued in its own folder, and (a copy) in a new one, which starts with the curve so far.
"$bin" "${tiny[@]}" --steps 200 --out "$work/a" --resume "$work/a/checkpoint.safetensors" > /dev/null
test "$(wc -l < "$work/a/metrics.jsonl")" -eq 200
"$bin" "${tiny[@]}" --steps 220 --out "$work/b" --resume "$work/a/checkpoint.safetensors" > /dev/null
test "$(wc -l < "$work/b/metrics.jsonl")" -eq 220
# A resume into a folder holding another run is refused (exit 2) and leaves it as it was.
set +e
"$bin" "${tiny[@]}" --steps 240 --out "$work/one" --resume "$work/a/checkpoint.safetensors" \
  > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 2 && grep -q "holds another run" "$work/err.log"
test "$(wc -l < "$work/one/metrics.jsonl")" -eq 1
# Divergence: exit 1 with the reason.
set +e
"$bin" "${tiny[@]}" --steps 3 --lr 1e308 --out "$work/nan" > /dev/null 2> "$work/err.log"; code=$?
set -e
test "$code" -eq 1 && grep -q "training diverged" "$work/err.log"
echo "demo smoke: ok"
