"""PyTorch side of the pooling benchmarks (bench/cpu_pool.cpp, bench/cuda_pool.cpp).

Ops, with dims N x C x H x W of the input (float32):
  max_pool2d_k2s2        F.max_pool2d(x, 2, 2, return_indices=True)
  max_pool2d_k3s2        F.max_pool2d(x, 3, 2, padding=1, return_indices=True)
  max_pool2d_k2s2_bwd    the k2s2 forward plus autograd.grad to x
  max_unpool2d_k2s2      F.max_unpool2d of the k2s2 pooled values back to H x W
  max_unpool2d_k2s2_bwd  autograd.grad of that unpool to the pooled values only (retain_graph)
  avg_pool2d_k2s2        F.avg_pool2d(x, 2, 2)
"""

OPS = ("max_pool2d_k2s2", "max_pool2d_k3s2", "max_pool2d_k2s2_bwd", "max_unpool2d_k2s2",
       "max_unpool2d_k2s2_bwd", "avg_pool2d_k2s2")


def make(torch, device, op, dims, randn):
    if op not in OPS or len(dims) != 4:
        return None
    F = torch.nn.functional
    n, c, h, w = dims
    x = randn(n, c, h, w)
    if op == "max_pool2d_k2s2":
        return lambda: F.max_pool2d(x, 2, 2, return_indices=True)
    if op == "max_pool2d_k3s2":
        return lambda: F.max_pool2d(x, 3, 2, padding=1, return_indices=True)
    if op == "avg_pool2d_k2s2":
        return lambda: F.avg_pool2d(x, 2, 2)
    if op == "max_pool2d_k2s2_bwd":
        x.requires_grad_(True)
        gout = randn(n, c, h // 2, w // 2)
        return lambda: torch.autograd.grad(F.max_pool2d(x, 2, 2), x, gout)
    values, indices = F.max_pool2d(x, 2, 2, return_indices=True)
    if op == "max_unpool2d_k2s2":
        return lambda: F.max_unpool2d(values, indices, 2, 2, output_size=(h, w))
    values = values.detach().requires_grad_(True)
    out = F.max_unpool2d(values, indices, 2, 2, output_size=(h, w))
    gout = randn(n, c, h, w)
    return lambda: torch.autograd.grad(out, values, gout, retain_graph=True)
