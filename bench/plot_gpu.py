#!/usr/bin/env python3
"""Draws a GPU benchmark run (cvg_bench_cuda's Google Benchmark JSON) as an SVG bar chart.

Two panels, one bar per benchmark:
  - convolutions: each handwritten backend's throughput as a share of cuDNN's on the same layer
    and pass (time_cudnn / time_version), with issue 4's 50 % line;
  - every other kernel with a bandwidth counter: %D2D (bytes the op must move, as a share of the
    measured device-to-device copy bandwidth), with the 70 % and 80 % lines of issues 3, 4 and 7.
Plain SVG written by hand (no plotting library is needed), so it runs on any machine that has
the JSON: python3 bench/plot_gpu.py RUN/bench_cuda.json -o RUN/gpu.svg
"""
import argparse
import json
import re
import sys
from html import escape

BAR_H, GAP, LABEL_W, PLOT_W, PAD = 14, 4, 330, 360, 12


def short(name):
    """'cuda/op/shape/min_time:0.100/manual_time' -> 'op/shape'."""
    return "/".join(name.split("/")[1:3])


def conv_rows(benchmarks):
    """(label, share) for every handwritten conv backend that has a cuDNN twin."""
    times = {short(b["name"]): b["real_time"] for b in benchmarks}
    rows = []
    for key, t in times.items():
        m = re.match(r"(conv2d|conv_transpose2d)_(v\d+)(_bwd)?_(\w+)/(.*)", key)
        if not m:
            continue
        twin = f"{m.group(1)}_cudnn{m.group(3) or ''}_{m.group(4)}/{m.group(5)}"
        if twin in times and t > 0:
            pass_name = "fwd+bwd" if m.group(3) else "fwd"
            label = f"{m.group(1)} {m.group(4)} {m.group(5)} {pass_name} {m.group(2)}"
            rows.append((label, 100.0 * times[twin] / t))
    return rows


def d2d_rows(benchmarks):
    rows = []
    for b in benchmarks:
        name = short(b["name"])
        # The unfused landmark losses are references for the fused kernels, not kernels to tune.
        if "%D2D" in b and not name.startswith(("conv", "memcpy")) and "unfused" not in name:
            rows.append((name, float(b["%D2D"])))
    return rows


def panel(title, rows, y0, lines, unit_max):
    """SVG elements of one panel starting at y0; returns (elements, height)."""
    out = [f'<text x="{PAD}" y="{y0 + 16}" font-weight="bold">{escape(title)}</text>']
    top = y0 + 26
    scale = PLOT_W / unit_max
    for i, (label, value) in enumerate(rows):
        y = top + i * (BAR_H + GAP)
        w = max(1.0, min(value, unit_max) * scale)
        colour = "#4c78a8" if value >= lines[0] else "#e45756"
        out.append(f'<text x="{PAD + LABEL_W - 6}" y="{y + BAR_H - 3}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{PAD + LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{colour}"/>')
        out.append(f'<text x="{PAD + LABEL_W + w + 4:.1f}" y="{y + BAR_H - 3}">{value:.0f}%</text>')
    bottom = top + len(rows) * (BAR_H + GAP)
    for v in lines:
        x = PAD + LABEL_W + v * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#333" '
                   f'stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x:.1f}" y="{top - 6}" text-anchor="middle">{v:.0f}%</text>')
    return out, bottom - y0 + 10


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="bench_cuda.json of a GPU run")
    ap.add_argument("-o", "--out", required=True, help="SVG file to write")
    args = ap.parse_args()
    with open(args.json) as f:
        data = json.load(f)
    benchmarks = [b for b in data.get("benchmarks", []) if not b.get("error_occurred")]
    gpu = data.get("context", {}).get("gpu", "GPU")
    parts, y = [], 0
    for title, rows, lines, unit_max in (
            (f"conv: handwritten throughput as a share of cuDNN's ({gpu})", conv_rows(benchmarks), [50], 120),
            (f"kernels: bytes moved as a share of the device-to-device copy bandwidth ({gpu})",
             d2d_rows(benchmarks), [70, 80], 100)):
        if not rows:
            continue
        elements, h = panel(title, rows, y, lines, unit_max)
        parts += elements
        y += h
    if not parts:
        print(f"plot_gpu: nothing to draw in {args.json}", file=sys.stderr)
        return 1
    width = PAD * 2 + LABEL_W + PLOT_W + 60
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + PAD}" '
           f'font-family="sans-serif" font-size="11">\n<rect width="100%" height="100%" fill="white"/>\n'
           + "\n".join(parts) + "\n</svg>\n")
    with open(args.out, "w") as f:
        f.write(svg)
    print(f"plot_gpu: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
