"""Baseline and DML (classic.md §5), written from the specification for method parity."""
import torch
import torch.nn.functional as F

from common import CifarResNet, Clock, MethodBase


def kl_batchmean(teacher_logits, student_logits, T=1.0):
    """KL_T(t || s), batchmean (classic.md §1.1): sum over classes, mean over the batch."""
    p_log = F.log_softmax(teacher_logits / T, dim=1)
    q_log = F.log_softmax(student_logits / T, dim=1)
    return (p_log.exp() * (p_log - q_log)).sum(1).mean()


def depth_of(arch):
    assert arch.startswith("resnet"), arch
    return int(arch[len("resnet"):])


class Baseline(MethodBase):
    def build(self, arch, num_classes, **_):
        self.nets = [("net", CifarResNet(depth_of(arch), num_classes))]

    def forward_train(self, views, labels, clock):
        ce = F.cross_entropy(self.nets[0][1](views[0]), labels)
        return ce, [("ce", ce)]


class DML(MethodBase):
    """K networks; L_k = CE(z_k, y) + 1/(K-1) sum_{l != k} T^2 KL_T(sg(z_l) || z_k), one forward
    and one simultaneous step of the sum (the PyTorch reproductions' order, okd's default)."""

    def __init__(self, peers=2, T=1.0):
        self.K, self.T = peers, T

    def build(self, arch, num_classes, **_):
        self.nets = [(f"net{k + 1}", CifarResNet(depth_of(arch), num_classes))
                     for k in range(self.K)]

    def forward_train(self, views, labels, clock):
        z = [net(views[0]) for _, net in self.nets]
        terms, total = [], 0
        for k in range(self.K):
            ce = F.cross_entropy(z[k], labels)
            kl = sum(kl_batchmean(z[l].detach(), z[k], self.T)
                     for l in range(self.K) if l != k) * (self.T**2 / (self.K - 1))
            terms += [(f"ce_net{k + 1}", ce), (f"kl_net{k + 1}", kl)]
            total = total + ce + kl
        return total, terms


# Past every ramp-up (epoch 100 of 300).
LATE = [Clock(100, 300, 0, 10), Clock(100, 300, 1, 10)]

# (case name, okd's --method value with options, factory of the implementation, clocks,
# run_case keyword arguments)
CASES = [
    ("baseline", "baseline", Baseline, LATE, {}),
    ("dml", "dml", DML, LATE, {}),
    ("dml_k3_t2_nesterov", "dml:peers=3,T=2", lambda: DML(peers=3, T=2.0), LATE,
     {"nesterov": True}),
]
