"""PyTorch side of the convolution benchmarks (bench/cpu_conv.cpp, bench/cuda_conv.cpp).

Ops, with dims N x Cin x H x W x Cout (float32, padding k // 2 or p<p>, bias); an optional
backend tag after the op name (_v<n>: cvgrad's handwritten CUDA version n, _cudnn: cvgrad's
cuDNN backend, _cudnnfind: the same with algorithms timed per shape, against PyTorch with
cudnn.benchmark on: bench/compare_torch.py) times the same PyTorch op:
  conv2d[_<b>]_k<k>s<s>[p<p>]        F.conv2d
  conv2d[_<b>]_bwd_k<k>s<s>[p<p>]    F.conv2d plus autograd.grad to x, weight and bias
  conv_transpose2d[_<b>]_k4s2        F.conv_transpose2d, kernel 4, stride 2, padding 1 (H x W -> 2H x 2W)
  conv2d_dw_k<k>s<s>[p<p>]           F.conv2d with groups = Cin (depthwise, Cout = Cin), no bias
"""
import re

BACKEND = r"(?:_v\d+|_cudnn|_cudnnfind)?"
CONV = re.compile(r"^conv2d" + BACKEND + r"(_bwd)?_k(\d+)s(\d+)(?:p(\d+))?$")
CONV_T = re.compile(r"^conv_transpose2d" + BACKEND + r"_k4s2$")
CONV_DW = re.compile(r"^conv2d_dw_k(\d+)s(\d+)(?:p(\d+))?$")


def make(torch, device, op, dims, randn):
    if len(dims) != 5:
        return None
    F = torch.nn.functional
    n, cin, h, w, cout = dims
    if CONV_T.match(op):
        x, weight, bias = randn(n, cin, h, w), randn(cin, cout, 4, 4), randn(cout)
        return lambda: F.conv_transpose2d(x, weight, bias, stride=2, padding=1)
    m = CONV_DW.match(op)
    if m is not None:
        k, s = int(m.group(1)), int(m.group(2))
        p = int(m.group(3)) if m.group(3) is not None else k // 2
        x, weight = randn(n, cin, h, w), randn(cin, 1, k, k)
        return lambda: F.conv2d(x, weight, None, stride=s, padding=p, groups=cin)
    m = CONV.match(op)
    if m is None:
        return None
    bwd, k, s = m.group(1) is not None, int(m.group(2)), int(m.group(3))
    p = int(m.group(4)) if m.group(4) is not None else k // 2
    x, weight, bias = randn(n, cin, h, w), randn(cout, cin, k, k), randn(cout)
    if not bwd:
        return lambda: F.conv2d(x, weight, bias, stride=s, padding=p)
    for t in (x, weight, bias):
        t.requires_grad_(True)
    with torch.no_grad():
        gout = torch.randn_like(F.conv2d(x, weight, bias, stride=s, padding=p))

    def step():
        y = F.conv2d(x, weight, bias, stride=s, padding=p)
        return torch.autograd.grad(y, (x, weight, bias), gout)

    return step
