"""PyTorch side of the landmarks train-step benchmark (bench/cpu_landmarks.cpp, cuda_landmarks.cpp).

Op "landmarks_step_k<K>" with dims N x C x H x W: one training step of the chapter-4 landmark
detector exactly as models/landmarks/objective.cpp computes it: two random TPS warps of
N images rendered at H + 2 crop (crop = 15 at 70 px, else H / 6), one forward of the SIMPLE
net (full width, BatchNorm + ReLU, K maps at stride 2) over [x; x2], spatial softmax, the
centred probability-map equivariance loss, the diversity loss (2 x 2 cells, 5 x 5 for 35 x 35
maps) on both halves, backward,
Adam with weight decay. A suffix naming cvgrad's convolution backend ("landmarks_step_k30_v2":
the handwritten v2; "_cudnn": cuDNN's heuristics; "_cudnnfind": cuDNN with timed algorithm
search) times the same PyTorch step: PyTorch has one backend, cuDNN (with cudnn.benchmark on for
the "_cudnnfind" rows: bench/compare_torch.py).
"""
import math
import re

STEP = re.compile(r"^landmarks_step_k(\d+)(?:_(?:v\d+|cudnn|cudnnfind))?$")


def _crop_for(size):
    return 15 if size == 70 else max(1, size // 6)


def _simple_net(torch, channels, k):
    nn = torch.nn
    layers, cin = [], channels
    for i, (ks, c) in enumerate([(5, 20), (5, 48), (3, 64), (3, 80), (3, 256)]):
        layers += [nn.Conv2d(cin, c, ks, padding=ks // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        if i == 0:
            layers.append(nn.MaxPool2d(2))
        cin = c
    layers.append(nn.Conv2d(cin, k, 1))
    return nn.Sequential(*layers)


def _tps_basis(torch, size, device, per_side=10):
    t = torch.linspace(-1, 1, per_side, dtype=torch.float64)
    ctrl = torch.stack(torch.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)
    c = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1  # align_corners=False centres
    pts = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)
    r2 = ((pts[:, None, :] - ctrl[None]) ** 2).sum(-1)
    u = r2 * torch.log(r2 + 1e-5)
    f = torch.cat([u, torch.ones(len(pts), 1, dtype=torch.float64), pts], 1)
    return f.float().to(device)


def _random_params(torch, n, strength, device):
    w = torch.randn(n, 100, 2, device=device) * 0.001 * strength
    big = torch.randn(n, 100, 2, device=device) * 0.01 * strength
    w = torch.where(torch.rand(n, 100, 2, device=device) < 0.5, big, w)
    th = torch.randn(n, device=device) * math.radians(5) * strength
    s = 1 + torch.randn(n, device=device) * 0.1 * strength
    t = torch.randn(n, 1, 2, device=device) * 0.1 * strength
    rx = torch.stack([s * th.cos(), -s * th.sin()], -1)[:, None]
    ry = torch.stack([s * th.sin(), s * th.cos()], -1)[:, None]
    return torch.cat([w, t, rx, ry], 1)


def make(torch, device, op, dims, randn):
    m = STEP.match(op)
    if m is None or len(dims) != 4:
        return None
    k = int(m.group(1))
    n, channels, size = dims[0], dims[1], dims[2]
    crop = _crop_for(size)
    full = size + 2 * crop
    F = torch.nn.functional
    model = _simple_net(torch, channels, k).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    basis = _tps_basis(torch, full, device)
    images = torch.rand(n, channels, full, full, device=device)
    h = size // 2
    cell = 2 if h % 2 == 0 else 5  # must divide the output size (35 at 70 px), as in the C++ side
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(h, device=device, dtype=torch.float32), indexing="ij")
    ux, uy = xs.reshape(-1), ys.reshape(-1)

    def spread(q, c):
        m = (q * c).sum(-1, keepdim=True)
        return m, (q * (c - m) ** 2).sum(-1, keepdim=True)

    def step():
        g1 = (basis @ _random_params(torch, n, 0.5, device)).reshape(n, full, full, 2)
        g2 = (basis @ _random_params(torch, n, 1.0, device)).reshape(n, full, full, 2)
        x1 = F.grid_sample(images, g1, padding_mode="border", align_corners=False)
        x2 = F.grid_sample(x1, g2, padding_mode="border", align_corners=False)
        x, xb = x1[..., crop:crop + size, crop:crop + size], x2[..., crop:crop + size, crop:crop + size]
        px = (g2 + 1) * (0.5 * full) - (0.5 + crop)
        px = px[:, crop:crop + size, crop:crop + size].permute(0, 3, 1, 2)
        grid = ((F.avg_pool2d(px, 2) - 0.5) * 0.5).permute(0, 2, 3, 1).reshape(n, 1, h * h, 2)
        logits = model(torch.cat([x, xb]))
        p = torch.softmax(logits.flatten(2), -1)
        q, q2 = p[:n], p[n:]
        mx, vx = spread(q, ux)
        my, vy = spread(q, uy)
        m2x, v2x = spread(q2, grid[..., 0])
        m2y, v2y = spread(q2, grid[..., 1])
        eq = (vx + vy + v2x + v2y + (mx - m2x) ** 2 + (my - m2y) ** 2).mean()

        def div(pp):
            cells = F.avg_pool2d(pp.reshape(n, k, h, h), cell) * (cell * cell)
            return k - cells.amax(1).sum((1, 2)).mean()

        loss = eq + div(q) + div(q2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step
