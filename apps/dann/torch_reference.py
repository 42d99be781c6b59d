#!/usr/bin/env python3
"""The cvg-dann training run in PyTorch, on the exact data of `cvg-dann export`: a reference to
tell a bug in cvgrad from a property of the data or of the recipe (docs/dann.md, "Checks").

Same network and initialisation (models/dann/model.h; --init pytorch for PyTorch's default),
input minus the channel means, the same loss, SGD momentum 0.9, lr_p = lr / (1 + 10 p)^0.75,
lambda_p = 2 / (1 + exp(-10 p)) - 1, batches of 64 source (+ 64 target). Only the batch order and
the initial weights differ from a cvgrad run (other random streams).

  cvg-dann export --out /tmp/dann-data
  OMP_NUM_THREADS=2 /usr/bin/python3 apps/dann/torch_reference.py /tmp/dann-data --mode source-only
"""
import argparse
import importlib.util
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

# The network and the reversal layer of the step benchmark's PyTorch side (one definition).
_spec = importlib.util.spec_from_file_location(
    "dann_torch", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../bench/torch_ops/dann.py"))
dann_torch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dann_torch)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("--mode", default="dann", choices=["dann", "source-only", "target-only"])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--init", default="he", choices=["he", "pytorch"],
                    help="he: weights N(0, 2 / fan_in), biases 0 (cvg-dann's); pytorch: PyTorch's default")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    load = lambda name: torch.from_numpy(np.load(f"{a.data}/{name}.npy"))
    sx, sy, tx, ty = load("source_train_x"), load("source_train_y"), load("target_train_x"), load("target_train_y")
    mean = load("mean").float().reshape(1, 3, 1, 1)
    feat, label, domain = dann_torch.networks(torch, he_init=a.init == "he")
    reverse = dann_torch.grad_reverse(torch)
    params = list(feat.parameters()) + list(label.parameters()) + list(domain.parameters())
    opt = torch.optim.SGD(params, lr=a.lr, momentum=0.9)
    n = a.batch_size
    domain_labels = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])

    def accuracy(x, y):
        with torch.no_grad():
            return sum((label(feat(x[i:i + 500] - mean)).argmax(1) == y[i:i + 500]).sum().item()
                       for i in range(0, len(x), 500)) / len(x)

    def evaluate():
        return {"source_accuracy": accuracy(load("source_test_x"), load("source_test_y")),
                "target_accuracy": accuracy(load("target_test_x"), load("target_test_y"))}

    order_s, order_t = torch.randperm(len(sx)), torch.randperm(len(tx))
    per_epoch = len(sx) // n
    for step in range(1, a.steps + 1):
        p = (step - 1) / a.steps
        for g in opt.param_groups:
            g["lr"] = a.lr / (1 + 10 * p) ** 0.75
        k = (step - 1) % per_epoch
        if k == 0 and step > 1:
            order_s, order_t = torch.randperm(len(sx)), torch.randperm(len(tx))
        bs, bt = order_s[k * n:(k + 1) * n], order_t[k * n:(k + 1) * n]
        if a.mode == "dann":
            lam = 2 / (1 + math.exp(-10 * p)) - 1
            f = feat(torch.cat([sx[bs], tx[bt]]) - mean)
            d = domain(reverse(f, lam))
            loss = F.cross_entropy(label(f[:n]), sy[bs]) + F.cross_entropy(d, domain_labels)
        else:
            x, y = (sx[bs], sy[bs]) if a.mode == "source-only" else (tx[bt], ty[bt])
            loss = F.cross_entropy(label(feat(x - mean)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % a.eval_every == 0 or step == a.steps:
            print(json.dumps({"step": step, "loss": round(loss.item(), 4), **evaluate()}), flush=True)


if __name__ == "__main__":
    main()
