#!/usr/bin/env bash
# scripts/trace-summary on a hand-written trace (known sums and ranking), on a real CVG_TRACE log
# of a small program (a line per op and node, self times adding up), and its errors.
# Usage: trace_summary_test.sh REPO_ROOT PATH/TO/cvg-landmarks
set -euo pipefail
root="$1"; bin="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/hand.log" <<'LOG'
some other output
[cvg fwd] conv2d  (2, 3, 8, 8) float32 cpu -> (2, 4, 8, 8) float32 cpu  3 ms (self 2.5 ms)
[cvg fwd] add  (2) float32 cpu, (2) float32 cpu -> (2) float32 cpu  0.5 ms (self 0.5 ms)
[cvg bwd] conv2d  grad (2, 4, 8, 8) float32 cpu -> 2 inputs  4 ms (self 4 ms)
[cvg fwd] conv2d  (2, 3, 8, 8) float32 cpu -> (2, 4, 8, 8) float32 cpu  1 ms (self 1.5 ms)
[cvg fwd] exp  (2) float32 cpu -> (2) float32 cpu  0.01 ms
LOG
"$root/scripts/trace-summary" "$work/hand.log" > "$work/hand.md"
cat "$work/hand.md"
grep -q "^4 traced ops and nodes, 8.500 ms of self time, 2 other lines ignored" "$work/hand.md"
# Ranked by self time: conv2d backward 4, conv2d forward 2.5 + 1.5 = 4 (ties by name, then pass), add 0.5.
test "$(sed -n 5p "$work/hand.md")" = "| conv2d | backward | 1 | 4.000 | 47.1% | 4.0000 |"
test "$(sed -n 6p "$work/hand.md")" = "| conv2d | forward | 2 | 4.000 | 47.1% | 2.0000 |"
test "$(sed -n 7p "$work/hand.md")" = "| add | forward | 1 | 0.500 | 5.9% | 0.5000 |"
# (through files: grep -q would stop reading early and fail the writer under pipefail)
"$root/scripts/trace-summary" "$work/hand.log" --top 1 > "$work/top1.md"
grep -q "^| (2 more) | | | 4.500 | 52.9% | |" "$work/top1.md"
"$root/scripts/trace-summary" --skip 3 < "$work/hand.log" > "$work/skip.md"
grep -q "^2 traced ops" "$work/skip.md"

# A real trace: two training steps of the landmarks app on the CPU.
CVG_TRACE=1 "$bin" train --device cpu --steps 2 --batch-size 2 --landmarks 4 --image-size 40 \
  --data-dir /nonexistent --out "$work/run" > /dev/null 2> "$work/real.log"
"$root/scripts/trace-summary" "$work/real.log" --top 0 > "$work/real.md"
head -3 "$work/real.md"
grep -q "| conv2d | forward |" "$work/real.md"
grep -q "| conv2d | backward |" "$work/real.md"

# Errors: nothing to summarise, bad options.
set +e
echo "no trace here" | "$root/scripts/trace-summary" > /dev/null 2> "$work/err.txt"; code=$?
set -e
test "$code" -ne 0 && grep -q "no trace lines" "$work/err.txt"
set +e
"$root/scripts/trace-summary" "$work/hand.log" --top -1 > /dev/null 2>&1; code=$?
set -e
test "$code" -eq 2
echo "trace-summary test passed"
