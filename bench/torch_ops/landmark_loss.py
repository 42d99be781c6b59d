"""PyTorch side of the landmark-loss benchmarks (bench/cpu_landmark_loss.cpp, bench/cuda_landmark_loss.cpp).

Ops, with dims N x K x h x w (float32 logits; N maps = N/2 image pairs):
  landmark_equivariance[_unfused][_bwd]
      the probability-map equivariance loss (thesis ch. 4, eq. 6, centred form) of the first
      N/2 maps against the last N/2 through a grid of the N/2 pairs (the pixel grid moved by
      0.5 * randn), mean over pairs and landmarks
  landmark_diversity_m<m>[_unfused][_bwd]
      K - mean_n sum_c max_r P_cr over m x m sum-pooled cells of all N maps
  _bwd adds autograd.grad to the logits. PyTorch has no fused form, so the fused and the
  unfused names time the same composition here (softmax over each plane, then the loss).
"""

import re

_OP = re.compile(r"^landmark_(equivariance|diversity_m(\d+))(_unfused)?(_bwd)?$")


def _maps(torch, x):
    n, k, h, w = x.shape
    return torch.softmax(x.reshape(n, k, h * w), -1)


def _equivariance(torch, x, grid):
    n = x.shape[0] // 2
    _, _, h, w = x.shape
    q, q2 = _maps(torch, x[:n]), _maps(torch, x[n:])
    ux = torch.arange(w, device=x.device, dtype=x.dtype).repeat(h)
    uy = torch.arange(h, device=x.device, dtype=x.dtype).repeat_interleave(w)
    gx = grid[..., 0].reshape(n, 1, h * w)
    gy = grid[..., 1].reshape(n, 1, h * w)

    def mean_and_spread(p, c):
        m = (p * c).sum(-1, keepdim=True)
        return m, (p * (c - m) ** 2).sum(-1, keepdim=True)

    mx, vx = mean_and_spread(q, ux)
    my, vy = mean_and_spread(q, uy)
    m2x, v2x = mean_and_spread(q2, gx)
    m2y, v2y = mean_and_spread(q2, gy)
    return (vx + vy + v2x + v2y + (mx - m2x) ** 2 + (my - m2y) ** 2).mean()


def _diversity(torch, x, m):
    n, k, h, w = x.shape
    p = _maps(torch, x).reshape(n, k, h, w)
    cells = torch.nn.functional.avg_pool2d(p, m) * (m * m)
    return k - cells.amax(1).sum((1, 2)).mean()


def make(torch, device, op, dims, randn):
    match = _OP.match(op)
    if match is None or len(dims) != 4:
        return None
    n, k, h, w = dims
    backward = match.group(4) is not None
    x = randn(n, k, h, w) * 2.0
    if backward:
        x.requires_grad_(True)
    if match.group(2) is None:
        ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                                torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
        grid = torch.stack([xs, ys], -1)[None] + randn(n // 2, h, w, 2) * 0.5

        def loss():
            return _equivariance(torch, x, grid)
    else:
        m = int(match.group(2))

        def loss():
            return _diversity(torch, x, m)

    if backward:
        return lambda: torch.autograd.grad(loss(), x)

    def forward():
        with torch.no_grad():
            return loss()

    return forward
