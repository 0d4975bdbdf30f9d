#!/usr/bin/env python3
"""Reference trajectories and learning rates for tests/optim (torch.optim, torch 1.13, float64).

Optimizers: a fixed least-squares problem, loss = 0.5 * ||A x - b||^2 with x the concatenation of
two parameters W [3, 4] and c [5] (17 values), so the gradient A^T (A x - b) is computed by the
C++ test with plain loops and needs no autograd. Each configuration runs 20 steps of
torch.optim.SGD / Adam / AdamW from the same start and saves the parameters after every step:
  tests/data/optim/problem_A.npy [20, 17], problem_b.npy [20], problem_x0.npy [17]
  tests/data/optim/traj_<config>.npy [20, 17]   (row s: x after step s + 1)
The configurations are listed in CONFIGS below (the C++ test has the same table).

Schedules: a 300-epoch run of torch.optim.lr_scheduler, the lr used at every epoch (stepping per
epoch) or every iteration (ITERS_PER_EPOCH iterations an epoch, stepping per iteration), with the
scheduler stepped after the epoch/iteration (the usual) or before it (EKD-FWSNet's reference):
  tests/data/optim/lr_<name>.npy [300] or [300 * ITERS_PER_EPOCH]

Run with Debian's python3-torch: /usr/bin/python3 tests/reference/make_optim_refs.py
"""
import os
import warnings

import numpy as np
import torch
from torch.optim import lr_scheduler as sched

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "optim")
STEPS = 20
ITERS_PER_EPOCH = 3
EPOCHS = 300

torch.set_default_dtype(torch.float64)


def save(name, array):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(array, dtype=np.float64))


# ---- optimizers -----------------------------------------------------------------------------------
g = torch.Generator().manual_seed(1234)
A = torch.randn(20, 17, generator=g) / np.sqrt(20.0)
b = torch.randn(20, generator=g)
x0 = torch.randn(17, generator=g)

# name -> (optimizer class, options of group 0, options of group 1 or None for one group)
CONFIGS = {
    "sgd_plain": (torch.optim.SGD, dict(lr=0.1), None),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9), None),
    "sgd_dampening": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3), None),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True), None),
    "sgd_weight_decay": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.05), None),
    "sgd_nesterov_weight_decay": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True,
                                                       weight_decay=0.05), None),
    "adam": (torch.optim.Adam, dict(lr=0.05), None),
    "adam_l2": (torch.optim.Adam, dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1), None),
    "adamw": (torch.optim.AdamW, dict(lr=0.05, weight_decay=0.1), None),
    "adam_amsgrad": (torch.optim.Adam, dict(lr=0.05, amsgrad=True), None),
    "adamw_amsgrad": (torch.optim.AdamW, dict(lr=0.05, weight_decay=0.1, amsgrad=True), None),
    # two groups: W and c with their own lr and decay (shared momentum / betas)
    "sgd_two_groups": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                       dict(lr=0.03, weight_decay=0.1)),
    "adamw_two_groups": (torch.optim.AdamW, dict(lr=0.05, weight_decay=0.01),
                         dict(lr=0.01, weight_decay=0.2)),
}


def run(config):
    cls, opts0, opts1 = config
    W = x0[:12].clone().reshape(3, 4).requires_grad_()
    c = x0[12:].clone().requires_grad_()
    if opts1 is None:
        opt = cls([W, c], **opts0)
    else:
        shared = {k: v for k, v in opts0.items() if k not in ("lr", "weight_decay")}
        opt = cls([dict(params=[W], lr=opts0["lr"], weight_decay=opts0["weight_decay"]),
                   dict(params=[c], **opts1)], **shared)
    rows = []
    for _ in range(STEPS):
        opt.zero_grad()
        x = torch.cat([W.reshape(-1), c])
        loss = 0.5 * ((A @ x - b) ** 2).sum()
        loss.backward()
        opt.step()
        rows.append(torch.cat([W.detach().reshape(-1), c.detach()]).numpy().copy())
    return np.stack(rows)


# ---- schedules ------------------------------------------------------------------------------------
BASE_LR = 0.1


def lrs(make, per_iteration, step_at_start=False, base_lr=BASE_LR):
    """The lr in force at every epoch (or iteration) of an EPOCHS-long run."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    s = make(opt, ITERS_PER_EPOCH if per_iteration else 1)
    n = EPOCHS * (ITERS_PER_EPOCH if per_iteration else 1)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(n):
            if step_at_start:
                s.step()
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if not step_at_start:
                s.step()
    return np.array(out)


# name -> (factory(optimizer, steps per epoch), base lr); each is run per epoch and per iteration.
SCHEDULES = {
    "multistep": (lambda o, u: sched.MultiStepLR(o, [150 * u, 225 * u], 0.1), BASE_LR),
    "step": (lambda o, u: sched.StepLR(o, 30 * u, 0.5), BASE_LR),
    "cosine": (lambda o, u: sched.CosineAnnealingLR(o, 300 * u, eta_min=1e-4), BASE_LR),
    "polynomial": (lambda o, u: sched.PolynomialLR(o, 300 * u, power=0.9), BASE_LR),
    # linear warmup from 0.1 over 5 epochs, then cosine over the remaining 295 (SequentialLR)
    "warmup_shift_cosine": (lambda o, u: sched.SequentialLR(
        o, [sched.LinearLR(o, 0.1, total_iters=5 * u), sched.CosineAnnealingLR(o, 295 * u)], [5 * u]),
        BASE_LR),
    # SequentialLR with MultiStepLR: the milestones count from the end of the warmup
    "warmup_shift_multistep": (lambda o, u: sched.SequentialLR(
        o, [sched.LinearLR(o, 0.25, total_iters=5 * u), sched.MultiStepLR(o, [150 * u, 225 * u], 0.1)],
        [5 * u]), BASE_LR),
    # FFSD's ImageNet-style recipe: warmup to 0.8 over 5 epochs times x0.1 at epochs 30 and 60
    "warmup_multiply_multistep": (lambda o, u: sched.ChainedScheduler(
        [sched.LinearLR(o, 0.125, total_iters=5 * u), sched.MultiStepLR(o, [30 * u, 60 * u], 0.1)]), 0.8),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    save("problem_A", A.numpy())
    save("problem_b", b.numpy())
    save("problem_x0", x0.numpy())
    for name, config in CONFIGS.items():
        save("traj_" + name, run(config))

    for name, (make, base) in SCHEDULES.items():
        save(f"lr_{name}_epoch", lrs(make, False, base_lr=base))
        save(f"lr_{name}_iter", lrs(make, True, base_lr=base))
    # EKD-FWSNet: MultiStepLR(150, 250) stepped at the start of each epoch (and of each iteration)
    ekd = lambda o, u: sched.MultiStepLR(o, [150 * u, 250 * u], 0.1)
    save("lr_multistep_start_epoch", lrs(ekd, False, step_at_start=True))
    save("lr_multistep_start_iter", lrs(ekd, True, step_at_start=True))
    # a warmup of 7 iterations (not a whole number of epochs), multiplied into MultiStepLR
    save("lr_warmup_iters_multistep_iter", lrs(lambda o, u: sched.ChainedScheduler(
        [sched.LinearLR(o, 0.1, total_iters=7), sched.MultiStepLR(o, [150 * u, 225 * u], 0.1)]), True))


if __name__ == "__main__":
    main()
