"""Shared pieces of the independent PyTorch implementations of okd's methods (method parity).

Each method under this folder is written from ../../../../shared/methods (the specification) and
the papers' official code, NOT from okd's C++: the point is two implementations that agree.
This module gives them what must be identical on both sides and nothing method-specific:

- det_uniform / det_param_values / det_init / det_batch: every parameter and image is a function
  of its name (FNV-1a 64 of the name seeds a SplitMix64 stream), mirrored bit for bit by
  tests/distill/method_parity.h, so no weights are shipped;
- CifarResNet: the CIFAR ResNet-(6n+2) with option-B shortcuts under okd's (the KD code bases')
  parameter names, split into stages (stem, layer1..3, head) that methods can run one by one or
  copy for branches;
- make_sgd: torch.optim.SGD over a method's parameter groups (coupled weight decay, as okd's);
- Case / write_case: runs a method for a few steps and writes what tests/distill/
  test_method_parity.cpp compares: every step's loss and terms, and for every tensor of every
  network's state the change over the run projected on a fixed random vector, and its L2 norm.

Everything runs in float64 (okd runs the same case in float64), so agreement is expected to
~1e-14 (the test allows 1e-11 on terms, 1e-9 of a change), far tighter than any float32
comparison could be.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from make_resnet_golden import BasicBlock  # noqa: E402  (option B, okd's names; tests/reference)
from safetensors_io import save_safetensors  # noqa: E402  (tests/reference/safetensors_io.py)

M64 = (1 << 64) - 1
DTYPE = torch.float64
OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "data", "method_parity")


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001B3) & M64
    return h


def det_uniform(key, n):
    """n values in [-1, 1): SplitMix64 seeded with fnv1a64(key), top 53 bits as u, 2u - 1."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(fnv1a64(key)) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return 2.0 * ((z >> np.uint64(11)).astype(np.float64) * 2.0**-53) - 1.0


class PhiloxStream:
    """okd's Generator (tensor/random.h, tensor/philox.h), for the draws a method makes inside its
    step (EKD-FWSNet's feature-augmentation dropout). This is okd's random-number convention, not
    method logic: Philox-4x32-10 with key = seed, counter = (block, 0); a draw of n values takes
    ceil(n / 4) blocks from the offset, value i is word i % 4 of block first + i // 4, and
    u = (word >> 8) / 2^24. bernoulli(p) is 1 where u < p."""

    M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85

    def __init__(self, seed):
        self.seed, self.offset = seed, 0

    def _words(self, n):
        blocks = (n + 3) // 4
        first, self.offset = self.offset, self.offset + blocks
        lo = np.arange(first, first + blocks, dtype=np.uint64)
        m32 = np.uint64(0xFFFFFFFF)
        c0, c1 = lo & m32, lo >> np.uint64(32)
        c2, c3 = np.zeros_like(lo), np.zeros_like(lo)
        k0, k1 = self.seed & 0xFFFFFFFF, (self.seed >> 32) & 0xFFFFFFFF
        for _ in range(10):
            p0, p1 = np.uint64(self.M0) * c0, np.uint64(self.M1) * c2  # exact: both < 2^32
            c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & m32,
                              (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & m32)
            k0, k1 = (k0 + self.W0) & 0xFFFFFFFF, (k1 + self.W1) & 0xFFFFFFFF
        return np.stack([c0, c1, c2, c3], axis=1).reshape(-1)[:n]

    def uniform01(self, n):
        return (self._words(n) >> np.uint64(8)).astype(np.float64) * (1.0 / 16777216.0)

    def bernoulli(self, shape, p):
        n = int(np.prod(shape))
        return torch.from_numpy((self.uniform01(n) < p).astype(np.float64).reshape(shape))


def det_param_values(key, shape):
    """>= 2 dims: u*sqrt(3/fan_in); 1-dim *weight: 1 + 0.1u; else 0.1u. Rounded to float32."""
    n = int(np.prod(shape)) if len(shape) else 1
    v = det_uniform(key, n)
    if len(shape) >= 2:
        v = v * math.sqrt(3.0 / (n // shape[0]))
    elif key.endswith("weight"):
        v = 1.0 + 0.1 * v
    else:
        v = 0.1 * v
    return torch.from_numpy(v.astype(np.float32).astype(np.float64)).reshape(shape)


def det_buffer(name, t):
    """Floating buffers other than batch norm's running statistics (MCL's memory banks) are set
    like parameters; running_mean, running_var and integer buffers keep their built values."""
    return t.is_floating_point() and not name.endswith(("running_mean", "running_var"))


def det_init(networks):
    """networks: list of (name, module) in okd's networks() order. Sets every parameter (and
    every det_buffer) from "<network>/<name>"; a tensor shared by several networks takes its
    first name."""
    seen = set()
    with torch.no_grad():
        for net_name, net in networks:
            targets = list(net.named_parameters())
            targets += [(n, b) for n, b in net.named_buffers() if det_buffer(n, b)]
            for pname, p in targets:
                if id(p) in seen:
                    continue
                seen.add(id(p))
                p.copy_(det_param_values(f"{net_name}/{pname}", tuple(p.shape)))


def det_batch(n, size, views, classes):
    """(list of views [n,3,size,size], labels [n]) as tests/distill/method_parity.h det_batch."""
    vs = []
    for v in range(views):
        px = det_uniform(f"batch/view{v}", n * 3 * size * size).astype(np.float32)
        vs.append(torch.from_numpy(px.astype(np.float64)).reshape(n, 3, size, size))
    labels = torch.arange(n, dtype=torch.int64) % classes
    return vs, labels


# --- the CIFAR ResNet with option-B shortcuts under okd's names -------------------------------


def make_layer(cin, cout, blocks, stride):
    return nn.Sequential(*[BasicBlock(cin if b == 0 else cout, cout, stride if b == 0 else 1)
                           for b in range(blocks)])


class CifarResNet(nn.Module):
    """ResNet-(6n+2), widths 16/32/64. Stages: 0 stem (conv1, bn1, relu), 1-3 layer1-3, 4 head
    (global average pool, fc). forward_taps gives every stage's output."""
    widths = (16, 32, 64)

    def __init__(self, depth=8, num_classes=10):
        super().__init__()
        self.blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = make_layer(16, 16, self.blocks, 1)
        self.layer2 = make_layer(16, 32, self.blocks, 2)
        self.layer3 = make_layer(32, 64, self.blocks, 2)
        self.fc = nn.Linear(64, num_classes)

    def stem(self, x):
        return F.relu(self.bn1(self.conv1(x)))

    def head(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def run_stage(self, i, x):
        return [self.stem, self.layer1, self.layer2, self.layer3, self.head][i](x)

    def run_stages(self, first, last, x):
        for i in range(first, last + 1):
            x = self.run_stage(i, x)
        return x

    def forward_taps(self, x):
        taps = []
        for i in range(5):
            x = self.run_stage(i, x)
            taps.append(x)
        return taps

    def forward(self, x):
        return self.run_stages(0, 4, x)


# --- the shared conventions of classic.md §1 / seeds.md §1 ----------------------------------------


def depth_of(arch):
    """6n + 2 of "resnet<depth>" (the CIFAR ResNets of CifarResNet)."""
    assert arch.startswith("resnet"), arch
    return int(arch[len("resnet"):])


def kl_batchmean(teacher_logits, student_logits, T=1.0, eps=0.0):
    """KL_T(t || s), batchmean (classic.md §1.1): sum over classes, mean over the batch, no T^2.
    eps is added to the teacher's probabilities p (not renormalised), in both places of
    p (log p - log q) (§1.1's optional 1e-7 of ONE/OKDDip; DML's TF code has 1e-8)."""
    q_log = F.log_softmax(student_logits / T, dim=1)
    if eps:
        p = F.softmax(teacher_logits / T, dim=1) + eps
        return (p * (p.log() - q_log)).sum(1).mean()
    p_log = F.log_softmax(teacher_logits / T, dim=1)
    return (p_log.exp() * (p_log - q_log)).sum(1).mean()


def sigmoid_rampup(epoch, length):
    """classic.md §1.3, seeds.md §1.5: exp(-5 (1 - clip(e, 0, L)/L)^2), e the 0-based epoch; 1 when
    L = 0 (the reference's guard)."""
    if length <= 0:
        return 1.0
    e = min(max(float(epoch), 0.0), float(length))
    return math.exp(-5.0 * (1.0 - e / length) ** 2)


# --- optimizer ---------------------------------------------------------------------------------


def make_sgd(groups, lr, momentum, weight_decay, nesterov):
    """groups: list of dicts {params, weight_decay (None: the run's), lr_scale (None: 1)}."""
    pg = []
    for g in groups:
        wd = weight_decay if g.get("weight_decay") is None else g["weight_decay"]
        scale = 1.0 if g.get("lr_scale") is None else g["lr_scale"]
        pg.append({"params": list(g["params"]), "weight_decay": wd, "lr": lr * scale})
    return torch.optim.SGD(pg, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           nesterov=nesterov)


# --- cases -------------------------------------------------------------------------------------


class Clock:
    """okd's TrainClock: epoch of epochs, step_in_epoch of iters_per_epoch, lr_factor."""

    def __init__(self, epoch, epochs, step, iters, lr_factor=1.0):
        self.epoch, self.epochs, self.step_in_epoch = epoch, epochs, step
        self.iters_per_epoch, self.lr_factor = iters, lr_factor

    def global_step(self):
        return self.epoch * self.iters_per_epoch + self.step_in_epoch

    def text(self):
        return f"{self.epoch},{self.epochs},{self.step_in_epoch},{self.iters_per_epoch}," \
               f"{self.lr_factor!r}"


# Two steps past every ramp-up and warm-up (epoch 100 of 300): the cases' usual clocks.
LATE = [Clock(100, 300, 0, 10), Clock(100, 300, 1, 10)]
# Four steps of one epoch inside every ramp-up and warm-up (epoch 3 of 300): what a captured
# training step replays (train_cifar --cuda-graph captures once per epoch; test_device's
# MethodParityCaptured replays steps 3 and 4), so a value that should move from step to step
# within an epoch and is frozen instead shows.
EPOCH3_4STEPS = [Clock(3, 300, k, 10) for k in range(4)]


def state_of(networks):
    """{"<network>/<name>": float64 tensor} for every parameter and buffer, first name wins."""
    out, seen = {}, set()
    for net_name, net in networks:
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if id(t) in seen:
                continue
            seen.add(id(t))
            out[f"{net_name}/{name}"] = t.detach().clone().to(torch.float64)
    return out


def det_teacher(net):
    """A frozen teacher's state (tests/distill/method_parity.h det_teacher): parameters from
    "teacher/<name>", running_mean 0.1u and running_var 1 + 0.5u from the same keys."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(det_param_values(f"teacher/{name}", tuple(p.shape)))
        for name, b in net.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                u = det_uniform(f"teacher/{name}", b.numel())
                v = 0.1 * u if name.endswith("running_mean") else 1.0 + 0.5 * u
                b.copy_(torch.from_numpy(v.astype(np.float32).astype(np.float64)).reshape(b.shape))


def run_case(name, method, spec, clocks, *, batch=8, size=16, classes=10, arch="resnet8",
             lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False, note="", teacher_arch=None):
    """Builds `method` (an object with build/networks/param_groups/num_views/on_epoch_start/
    forward_train/update/after_update, mirroring okd's Method), initialises it with det_init,
    runs one step per clock on det_batch and writes tests/data/method_parity/<name>.safetensors.

    spec is okd's --method value with its options ("ekd-fws:kl_weight=6"); the C++ test builds
    that, so the options here and there must mean the same. forward_train returns
    (loss, [(term name, scalar tensor)]); update(loss, terms, optimizer, clock) does the backward
    and the step(s) and may append terms, as okd's Method::update."""
    torch.manual_seed(0)
    extra = {"teacher_arch": teacher_arch} if teacher_arch else {}
    method.build(arch=arch, num_classes=classes, image_size=size, epochs=clocks[0].epochs,
                 iters_per_epoch=clocks[0].iters_per_epoch, lr=lr, **extra)
    nets = method.networks()
    for _, net in nets:
        net.to(DTYPE)
    det_init(nets)  # okd overwrites what its build() initialised the same way: nothing after
    init = state_of(nets)
    opt = make_sgd(method.param_groups(), lr, momentum, weight_decay, nesterov)
    views, labels = det_batch(batch, size, method.num_views(), classes)
    out = {}
    prev_epoch = None
    for k, clock in enumerate(clocks):
        for g, base in zip(opt.param_groups, method.param_groups()):
            scale = 1.0 if base.get("lr_scale") is None else base["lr_scale"]
            g["lr"] = lr * scale * clock.lr_factor
        method.set_training(True)
        if prev_epoch != clock.epoch:
            method.on_epoch_start(clock)
        prev_epoch = clock.epoch
        loss, terms = method.forward_train(views, labels, clock)
        terms = list(terms)
        method.update(loss, terms, opt, clock)
        method.after_update(clock)
        out[f"step{k}/loss"] = np.array(float(loss))
        for tname, t in terms:
            out[f"step{k}/term/{tname}"] = np.array(float(t))
    final = state_of(nets)
    for key, t0 in init.items():
        d = (final[key] - t0).reshape(-1).numpy()
        r = det_uniform("proj/" + key, d.size)
        out[f"final/{key}/proj"] = np.array(float(np.dot(d, r)))
        out[f"final/{key}/delta_l2"] = np.array(float(np.linalg.norm(d)))
    meta = {"method": spec, "arch": arch, "classes": str(classes), "image_size": str(size),
            "batch": str(batch), "lr": repr(lr), "momentum": repr(momentum),
            "weight_decay": repr(weight_decay), "nesterov": "true" if nesterov else "false",
            "clocks": ";".join(c.text() for c in clocks), "note": note}
    if teacher_arch:  # an offline method: the C++ test writes the teacher and names it @TEACHER@
        meta["teacher_arch"] = teacher_arch
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name + ".safetensors")
    # float64, sorted by name; scalars as [1] (as the cases were first written)
    save_safetensors(path, {k: np.ascontiguousarray(out[k], dtype=np.float64) for k in sorted(out)},
                     meta)
    print(f"{name}: {len(clocks)} steps, loss " +
          ", ".join(f"{float(out[f'step{k}/loss']):.10f}" for k in range(len(clocks))) +
          f", {len(init)} tensors -> {os.path.relpath(path)}")


class MethodBase:
    """Defaults of okd's Method: one view, every parameter in one group, a plain backward and
    step, nothing at epoch starts or after updates. A subclass sets self.nets in build()."""

    def networks(self):
        return self.nets

    def param_groups(self):
        params, seen = [], set()
        for _, net in self.nets:
            for p in net.parameters():
                if id(p) not in seen and p.requires_grad:
                    seen.add(id(p))
                    params.append(p)
        return [{"params": params}]

    def num_views(self):
        return 1

    def set_training(self, on):
        for _, net in self.nets:
            net.train(on)

    def on_epoch_start(self, clock):
        pass

    def update(self, loss, terms, opt, clock):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def after_update(self, clock):
        pass
