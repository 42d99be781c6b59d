"""PyTorch side of the convolution benchmarks (bench/cpu_conv.cpp, bench/cuda_conv.cpp).

Ops, with dims N x Cin x H x W x Cout (float32, padding k // 2, bias):
  conv2d_k<k>s<s>          F.conv2d
  conv2d_v<n>_k<k>s<s>     the same (cvgrad's CUDA kernel version n, run directly)
  conv2d_bwd_k<k>s<s>      F.conv2d plus autograd.grad to x, weight and bias
  conv_transpose2d_k4s2    F.conv_transpose2d, kernel 4, stride 2, padding 1 (H x W -> 2H x 2W)
"""
import re

CONV = re.compile(r"^conv2d(?:_v\d+)?(_bwd)?_k(\d+)s(\d+)$")


def make(torch, device, op, dims, randn):
    if len(dims) != 5:
        return None
    F = torch.nn.functional
    n, cin, h, w, cout = dims
    if op == "conv_transpose2d_k4s2":
        x, weight, bias = randn(n, cin, h, w), randn(cin, cout, 4, 4), randn(cout)
        return lambda: F.conv_transpose2d(x, weight, bias, stride=2, padding=1)
    m = CONV.match(op)
    if m is None:
        return None
    bwd, k, s = m.group(1) is not None, int(m.group(2)), int(m.group(3))
    x, weight, bias = randn(n, cin, h, w), randn(cout, cin, k, k), randn(cout)
    if not bwd:
        return lambda: F.conv2d(x, weight, bias, stride=s, padding=k // 2)
    for t in (x, weight, bias):
        t.requires_grad_(True)
    with torch.no_grad():
        gout = torch.randn_like(F.conv2d(x, weight, bias, stride=s, padding=k // 2))

    def step():
        y = F.conv2d(x, weight, bias, stride=s, padding=k // 2)
        return torch.autograd.grad(y, (x, weight, bias), gout)

    return step
