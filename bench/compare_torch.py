#!/usr/bin/env python3
"""Times the ops of cvgrad's benchmarks with PyTorch and prints a cvgrad/PyTorch ratio table.

Reads Google Benchmark JSON written by cvg_bench_cpu / cvg_bench_cuda
(--benchmark_out=FILE --benchmark_out_format=json). Each benchmark name is
"<device>/<op>/<shape>" (see bench/bench_common.h); the same op and shape are timed here with
PyTorch the same way cvgrad timed them:
  cuda: float32 CUDA tensors, L2 flushed (a buffer twice the L2 size is zeroed) before every
        iteration, each iteration timed alone with CUDA events; TF32 is disabled so matmul is
        FP32 like cvgrad's SGEMM. cuDNN picks algorithms by its heuristics (PyTorch's default,
        torch.backends.cudnn.benchmark off) except for ops whose name contains "cudnnfind",
        cvgrad's timed algorithm search, which PyTorch then matches with benchmark on
        (marked "search" in the table).
  cpu:  float32 tensors, wall-clock time per call, torch.set_num_threads(--threads) (match
        OMP_NUM_THREADS of the cvgrad run).
Both report the mean time per iteration. ratio = cvgrad time / PyTorch time: 1.0 is parity,
2.0 means cvgrad takes twice as long.

The foundation ops are mapped here (make_inputs); every other op family maps its own in
bench/torch_ops/<family>.py, a module with make(torch, device, op, dims, randn) returning a
zero-argument callable (or None for ops it does not know).

Benchmarks without a PyTorch counterpart, and PyTorch ops that raise, are listed under the
table (and in the JSON) rather than ending the comparison; the exit status is 1 when one raised.
--check times nothing: it builds every mapped PyTorch callable on the CPU and lists which
benchmarks have none, so the mappings of a GPU run's JSON can be checked without a GPU.

Usage: compare_torch.py RESULT.json [RESULT.json ...] [--md OUT.md] [--json OUT.json]
                        [--threads N] [--min-time SECONDS] [--check]
"""
import argparse
import importlib.util
import json
import os
import sys
import time

UNIT_TO_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_name(name):
    parts = name.split("/")
    if len(parts) < 3:
        return None
    device, op, shape = parts[0], parts[1], parts[2]
    dims = [int(d) for d in shape.split("x")]
    return device, op, dims


def load_family_modules():
    """The bench/torch_ops/*.py modules, in name order."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_ops")
    modules = []
    if not os.path.isdir(folder):
        return modules
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py") or name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location("torch_ops_" + name[:-3], os.path.join(folder, name))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


FAMILIES = load_family_modules()


def make_inputs(torch, device, op, dims):
    gen = torch.Generator(device="cpu").manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device)

    for family in FAMILIES:
        fn = family.make(torch, device, op, dims, randn)
        if fn is not None:
            return fn
    if op in ("matmul", "cublas") or op.startswith("sgemm_v"):
        n = dims[0]
        a, b = randn(n, n), randn(n, n)
        return lambda: torch.matmul(a, b)
    if op == "memcpy_d2d":
        a = torch.zeros(dims[0], device=device)
        b = torch.empty_like(a)
        return lambda: b.copy_(a)
    shape = dims if len(dims) > 1 else [dims[0]]
    x = randn(*shape)
    if op == "relu":
        return lambda: torch.relu(x)
    if op == "exp":
        return lambda: torch.exp(x)
    if op in ("add", "mul"):
        y = randn(*shape)
        return (lambda: torch.add(x, y)) if op == "add" else (lambda: torch.mul(x, y))
    if op == "add_bcast":
        bias = randn(1, shape[1])
        return lambda: torch.add(x, bias)
    if op == "transpose":
        return lambda: x.t().contiguous()
    if op == "sum_rows":
        return lambda: x.sum(1)
    if op == "softmax":
        return lambda: torch.softmax(x, 1)
    return None


def time_cuda(torch, fn, min_time, flush):
    fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    total, iters = 0.0, 0
    while total < min_time or iters < 10:
        flush.zero_()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        total += start.elapsed_time(stop) * 1e-3
        iters += 1
        if iters >= 100000:
            break
    return total / iters


def time_cpu(fn, min_time):
    fn()
    total, iters = 0.0, 0
    while total < min_time or iters < 10:
        t0 = time.perf_counter()
        fn()
        total += time.perf_counter() - t0
        iters += 1
    return total / iters


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="Google Benchmark JSON files from cvgrad")
    ap.add_argument("--md", help="write the table as markdown here")
    ap.add_argument("--json", help="write the rows as JSON here")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")),
                    help="PyTorch CPU threads (default: $OMP_NUM_THREADS or 2)")
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per PyTorch measurement")
    ap.add_argument("--check", action="store_true",
                    help="time nothing: list which benchmarks have a PyTorch counterpart (built on the "
                         "CPU, so a machine without a GPU can check the GPU benchmarks' mappings)")
    args = ap.parse_args()

    try:
        import torch
    except ImportError as e:
        print(f"compare_torch: PyTorch is not importable ({e}); nothing to compare", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    have_cuda = torch.cuda.is_available()
    if have_cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20)
        flush = torch.empty(max(2 * l2, 64 << 20), dtype=torch.uint8, device="cuda")

    rows, unmapped, failed = [], [], []
    for path in args.results:
        with open(path) as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate" or b.get("error_occurred"):
                continue
            parsed = parse_name(b["name"])
            if not parsed:
                continue
            device, op, dims = parsed
            name = "/".join(b["name"].split("/")[:3])  # drops Google Benchmark's "/real_time" etc.
            if args.check:
                try:
                    fn = make_inputs(torch, "cpu", op, dims)
                except Exception as e:  # noqa: BLE001 (a broken mapping is what --check reports)
                    failed.append(f"{name}: {type(e).__name__}: {e}")
                    continue
                (unmapped if fn is None else rows).append(name)
                del fn
                continue
            if device == "cuda" and not have_cuda:
                continue
            ours = b["real_time"] * UNIT_TO_S[b.get("time_unit", "ns")]
            search = device == "cuda" and "cudnnfind" in op
            torch.backends.cudnn.benchmark = search
            try:
                fn = make_inputs(torch, "cuda" if device == "cuda" else "cpu", op, dims)
                if fn is None:
                    unmapped.append(name)
                    continue
                theirs = time_cuda(torch, fn, args.min_time, flush) if device == "cuda" else time_cpu(fn, args.min_time)
            except Exception as e:  # noqa: BLE001 (one failing PyTorch op must not end the comparison)
                failed.append(f"{name}: {type(e).__name__}: {e}")
                continue
            rows.append({
                "name": name, "device": device, "op": op, "shape": "x".join(map(str, dims)),
                "cvgrad_us": ours * 1e6, "torch_us": theirs * 1e6, "ratio": ours / theirs,
                "torch_cudnn_benchmark": search,
                "cvgrad_counters": {k: v for k, v in b.items()
                                    if k in ("GB/s", "GFLOP/s", "%D2D", "%FP32peak")},
            })
            del fn
            if device == "cuda":
                torch.cuda.empty_cache()

    if args.check:
        print(f"{len(rows)} benchmarks have a PyTorch counterpart")
        for label, names in (("no PyTorch counterpart", unmapped), ("mapping failed", failed)):
            print(f"\n{len(names)} {label}:" + "".join(f"\n  {n}" for n in names))
        return 1 if failed else 0

    header = f"| benchmark | cvgrad (us) | PyTorch (us) | cvgrad/PyTorch |\n|---|---:|---:|---:|\n"
    lines = [f"| {r['name']} | {r['cvgrad_us']:.1f} | {r['torch_us']:.1f}"
             f"{' (search)' if r['torch_cudnn_benchmark'] else ''} | {r['ratio']:.2f} |"
             for r in rows]
    info = f"PyTorch {torch.__version__}"
    if have_cuda:
        info += (f", {torch.cuda.get_device_name(0)}, TF32 off, cuDNN heuristics (search: "
                 "cudnn.benchmark on, for cvgrad's cudnnfind rows)")
    info += f", CPU threads {args.threads}"
    table = f"{info}\n\n{header}" + "\n".join(lines) + "\n"
    if unmapped:
        table += "\nNo PyTorch counterpart (not compared): " + ", ".join(unmapped) + "\n"
    if failed:
        table += "\nPyTorch failed on:\n" + "".join(f"- {f}\n" for f in failed)
    print(table)
    if args.md:
        with open(args.md, "w") as f:
            f.write(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": args.threads, "rows": rows,
                       "unmapped": unmapped, "failed": failed}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
