"""PyTorch side of the sampling benchmarks (bench/cpu_sample.cpp, bench/cuda_sample.cpp).

Ops, with dims N x C x H x W (float32; output H x W unless noted):
  grid_sample             F.grid_sample, bilinear, zeros, align_corners=False, grid 0.5 * randn
  grid_sample_bwd         the same forward plus autograd.grad to input and grid
  grid_sample_nearest     mode='nearest'
  flow_warp               grid_sample at (x + flow_x, y + flow_y) in pixels (align_corners=True
                          normalisation of the pixel grid plus the flow), zeros padding
  interpolate_bilinear2x  F.interpolate to 2H x 2W, bilinear, align_corners=False
  interpolate_nearest2x   F.interpolate to 2H x 2W, nearest
"""

OPS = ("grid_sample", "grid_sample_bwd", "grid_sample_nearest", "flow_warp",
       "interpolate_bilinear2x", "interpolate_nearest2x")


def make(torch, device, op, dims, randn):
    if op not in OPS or len(dims) != 4:
        return None
    F = torch.nn.functional
    n, c, h, w = dims
    x = randn(n, c, h, w)
    if op in ("grid_sample", "grid_sample_nearest"):
        grid = randn(n, h, w, 2) * 0.5
        mode = "nearest" if op == "grid_sample_nearest" else "bilinear"
        return lambda: F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if op == "grid_sample_bwd":
        x.requires_grad_(True)
        grid = (randn(n, h, w, 2) * 0.5).requires_grad_(True)
        gout = randn(n, c, h, w)

        def step():
            y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            return torch.autograd.grad(y, (x, grid), gout)

        return step
    if op == "flow_warp":
        flow = randn(n, 2, h, w) * 3.0
        ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                                torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
        base = torch.stack([xs, ys], -1)[None]
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=device)

        def warp():
            grid = (base + flow.permute(0, 2, 3, 1)) * scale - 1
            return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

        return warp
    mode = "bilinear" if op == "interpolate_bilinear2x" else "nearest"
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return lambda: F.interpolate(x, size=(2 * h, 2 * w), mode=mode, **kwargs)
