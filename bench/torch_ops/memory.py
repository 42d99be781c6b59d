"""PyTorch side of the host-memory benchmarks (bench/cpu_memory.cpp).

  full_fresh   torch.full((n,), 1.0): a float32 tensor of n elements allocated and filled once
               per call, the previous one freed
"""


def make(torch, device, op, dims, randn):
    if op != "full_fresh" or len(dims) != 1:
        return None
    n = dims[0]
    return lambda: torch.full((n,), 1.0, device=device)
