"""PyTorch side of the DANN train-step benchmark (bench/cpu_dann.cpp).

Ops "dann_step", "dann_step_d1024" (G_d with two hidden layers of 1024, docs/dann.md) and
"dann_source_only_step" with dims N x 3 x 28 x 28: one training step of
the MNIST DANN network exactly as models/dann/model.cpp computes it. G_f = conv5x5x32 - ReLU -
maxpool2 - conv5x5x48 - ReLU - maxpool2 (input mean-subtracted first); G_y = FC100 - ReLU -
FC100 - ReLU - FC10; G_d = gradient reversal - FC100 - ReLU - FC2. dann_step: G_f over N source
+ N target images, cross-entropy of G_y on the source half plus the domain cross-entropy over
all 2N images; source_only_step: G_f and G_y on N source images. Then backward and SGD (lr 0.01,
momentum 0.9).
"""


def grad_reverse(torch):
    class GradReverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, lam):
            ctx.lam = lam
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return -ctx.lam * g, None

    return GradReverse.apply


def networks(torch, he_init=True, domain_hidden=(100,)):
    """G_f, G_y and G_d of models/dann/model.h (G_d's hidden widths: domain_hidden), with its He
    initialisation (weights N(0, 2 / fan_in), biases 0) or, with he_init=False, PyTorch's default."""
    nn = torch.nn
    feat = nn.Sequential(nn.Conv2d(3, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 48, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten())
    label = nn.Sequential(nn.Linear(768, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    layers, width = [], 768
    for h in domain_hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    domain = nn.Sequential(*layers, nn.Linear(width, 2))
    if he_init:
        for m in list(feat) + list(label) + list(domain):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return feat, label, domain


def make(torch, device, op, dims, randn):
    hidden = {"dann_step": (100,), "dann_step_d1024": (1024, 1024), "dann_source_only_step": (100,)}
    if op not in hidden or len(dims) != 4:
        return None
    n = dims[0]
    F = torch.nn.functional
    feat, label, domain = (m.to(device) for m in networks(torch, domain_hidden=hidden[op]))
    params = list(feat.parameters()) + list(label.parameters()) + list(domain.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    mean = torch.full((1, 3, 1, 1), 0.45, device=device)
    xs = torch.rand(n, 3, 28, 28, device=device)
    xt = torch.rand(n, 3, 28, 28, device=device)
    ys = torch.randint(0, 10, (n,), device=device)
    domain_labels = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)]).to(device)
    reverse = grad_reverse(torch)
    dann = op != "dann_source_only_step"

    def step():
        if dann:
            f = feat(torch.cat([xs, xt]) - mean)
            d = domain(reverse(f, 0.5))
            loss = F.cross_entropy(label(f[:n]), ys) + F.cross_entropy(d, domain_labels)
        else:
            loss = F.cross_entropy(label(feat(xs - mean)), ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def interleaved(bench_exe, rounds, min_time, threads):
    """On a machine shared with other jobs, a cvgrad run and a PyTorch run taken minutes apart see
    different loads (ratios from 0.7 to 1.5 for the same build). This alternates the two, one
    benchmark each per round, and reports each side's fastest round (the least disturbed one) and
    the median of the per-round ratios."""
    import json
    import statistics
    import subprocess
    import time

    import torch

    torch.set_num_threads(threads)
    out = {"torch": torch.__version__, "threads": threads, "rounds": rounds, "benchmarks": []}
    for op in ("dann_step", "dann_source_only_step"):
        name = f"cpu/{op}/64x3x28x28"
        step = make(torch, "cpu", op, [64, 3, 28, 28], None)
        step()
        cvg, pt = [], []
        for _ in range(rounds):
            res = subprocess.run([bench_exe, f"--benchmark_filter=^{name}/", f"--benchmark_min_time={min_time}",
                                  "--benchmark_format=json"], check=True, capture_output=True, text=True)
            b = json.loads(res.stdout)["benchmarks"][0]
            assert b["time_unit"] == "ms", b["time_unit"]
            cvg.append(b["real_time"])
            iters, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < min_time or iters < 3:
                step()
                iters += 1
            pt.append(1e3 * (time.perf_counter() - t0) / iters)
        out["benchmarks"].append({
            "name": name, "cvgrad_ms": cvg, "torch_ms": pt, "cvgrad_best_ms": min(cvg), "torch_best_ms": min(pt),
            "ratio_of_best": min(cvg) / min(pt),
            "median_ratio": statistics.median(c / p for c, p in zip(cvg, pt))})
    return out


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description="cvgrad vs PyTorch DANN train step, interleaved rounds")
    ap.add_argument("bench_exe", help="path to cvg_bench_cpu")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per benchmark per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the rounds and summaries here")
    a = ap.parse_args()
    r = interleaved(a.bench_exe, a.rounds, a.min_time, a.threads)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    print(f"PyTorch {r['torch']}, CPU threads {r['threads']}, {r['rounds']} interleaved rounds\n")
    print("| benchmark | cvgrad best (ms) | PyTorch best (ms) | ratio of best | median ratio |")
    print("|---|---:|---:|---:|---:|")
    for b in r["benchmarks"]:
        print(f"| {b['name']} | {b['cvgrad_best_ms']:.1f} | {b['torch_best_ms']:.1f} | {b['ratio_of_best']:.2f} | "
              f"{b['median_ratio']:.2f} |")
