#!/usr/bin/env bash
# bench/plot_gpu.py on a hand-made Google Benchmark JSON: a conv layer whose handwritten v2 takes
# twice cuDNN's time must come out at 50 % of cuDNN's throughput, a kernel's %D2D counter as its
# bar, unfused references and failed benchmarks left out, and a file with nothing to draw is an
# error (exit 1).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$tmp/run.json" <<'JSON'
{"context": {"gpu": "Test GPU"},
 "benchmarks": [
  {"name": "cuda/conv2d_v2_k3s1/8x16x10x10x32/min_time:0.100/manual_time", "real_time": 200.0},
  {"name": "cuda/conv2d_cudnn_k3s1/8x16x10x10x32/min_time:0.100/manual_time", "real_time": 100.0},
  {"name": "cuda/max_pool2d_k2s2/8x16x10x10/min_time:0.100/manual_time", "real_time": 5.0, "%D2D": 42.0},
  {"name": "cuda/landmark_equivariance_unfused/2x3x8x8/min_time:0.100/manual_time", "real_time": 9.0, "%D2D": 3.0},
  {"name": "cuda/dropout/8x16x10x10/min_time:0.100/manual_time", "error_occurred": true, "%D2D": 1.0}
 ]}
JSON
python3 "$repo/bench/plot_gpu.py" "$tmp/run.json" -o "$tmp/out.svg" > /dev/null
python3 - "$tmp/out.svg" <<'PY' || fail "unexpected chart"
import sys
import xml.dom.minidom
doc = xml.dom.minidom.parse(sys.argv[1])
texts = [t.firstChild.data for t in doc.getElementsByTagName("text") if t.firstChild]
assert "conv2d k3s1 8x16x10x10x32 fwd v2" in texts, texts
assert "50%" in texts and "42%" in texts, texts
assert "max_pool2d_k2s2/8x16x10x10" in texts, texts
assert not any("unfused" in t or "dropout" in t for t in texts), texts
assert any("Test GPU" in t for t in texts), texts
PY

echo '{"benchmarks": []}' > "$tmp/empty.json"
rc=0; python3 "$repo/bench/plot_gpu.py" "$tmp/empty.json" -o "$tmp/empty.svg" 2> "$tmp/err" || rc=$?
[ $rc -eq 1 ] || fail "an empty run exited $rc"
grep -q "nothing to draw" "$tmp/err" || fail "no message for an empty run"
echo "plot_gpu_test: ok"
