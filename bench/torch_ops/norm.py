"""PyTorch side of the normalisation benchmarks (bench/cpu_norm.cpp, bench/cuda_norm.cpp).

Ops, with dims N x C x H x W (float32):
  batch_norm_train      F.batch_norm, training=True, running stats updated
  batch_norm_train_bwd  the same forward plus autograd.grad to x, weight and bias
  batch_norm_eval       F.batch_norm, training=False
  instance_norm         F.instance_norm with weight and bias
  layer_norm            F.layer_norm over (C, H, W) with elementwise weight and bias
  layer_norm_bwd        the same forward plus autograd.grad to x, weight and bias
  dropout               F.dropout, p = 0.5, training
  spatial_softmax       softmax over the H * W positions of each (n, c) plane
  soft_argmax           expected (x, y) pixel coordinates under spatial_softmax
  soft_argmax_bwd       the same forward plus autograd.grad to x
"""

OPS = ("batch_norm_train", "batch_norm_train_bwd", "batch_norm_eval", "instance_norm",
       "layer_norm", "layer_norm_bwd", "dropout", "spatial_softmax", "soft_argmax",
       "soft_argmax_bwd")


def make(torch, device, op, dims, randn):
    if op not in OPS or len(dims) != 4:
        return None
    F = torch.nn.functional
    n, c, h, w = dims
    x = randn(n, c, h, w)
    if op.startswith("batch_norm"):
        weight, bias = randn(c), randn(c)
        if op == "batch_norm_eval":
            rm, rv = randn(c), torch.rand(c, device=device) + 0.5
            return lambda: F.batch_norm(x, rm, rv, weight, bias, training=False)
        rm, rv = torch.zeros(c, device=device), torch.ones(c, device=device)
        if op == "batch_norm_train":
            return lambda: F.batch_norm(x, rm, rv, weight, bias, training=True)
        gout = randn(n, c, h, w)
        for t in (x, weight, bias):
            t.requires_grad_(True)

        def bn_step():
            y = F.batch_norm(x, rm, rv, weight, bias, training=True)
            return torch.autograd.grad(y, (x, weight, bias), gout)

        return bn_step
    if op == "instance_norm":
        weight, bias = randn(c), randn(c)
        return lambda: F.instance_norm(x, weight=weight, bias=bias)
    if op.startswith("layer_norm"):
        weight, bias = randn(c, h, w), randn(c, h, w)
        if op == "layer_norm":
            return lambda: F.layer_norm(x, (c, h, w), weight, bias)
        gout = randn(n, c, h, w)
        for t in (x, weight, bias):
            t.requires_grad_(True)

        def ln_step():
            y = F.layer_norm(x, (c, h, w), weight, bias)
            return torch.autograd.grad(y, (x, weight, bias), gout)

        return ln_step
    if op == "dropout":
        return lambda: F.dropout(x, 0.5, training=True)
    if op == "spatial_softmax":
        return lambda: torch.softmax(x.reshape(n, c, h * w), -1).reshape(n, c, h, w)
    ys = torch.arange(h, device=device, dtype=torch.float32)
    xs = torch.arange(w, device=device, dtype=torch.float32)

    def soft_argmax(t):
        p = torch.softmax(t.reshape(n, c, h * w), -1).reshape(n, c, h, w)
        return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)

    if op == "soft_argmax":
        return lambda: soft_argmax(x)
    x.requires_grad_(True)
    gout = randn(n, c, 2)
    return lambda: torch.autograd.grad(soft_argmax(x), x, gout)
