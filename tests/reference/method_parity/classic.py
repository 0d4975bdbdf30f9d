"""Baseline and DML (classic.md §5), written from the specification for method parity."""
import torch
import torch.nn.functional as F

from common import EPOCH3_4STEPS, CifarResNet, LATE, MethodBase, depth_of, kl_batchmean


class Baseline(MethodBase):
    """CE(z, y), with PyTorch's label smoothing when asked (okd's baseline:label-smoothing)."""

    def __init__(self, label_smoothing=0.0):
        self.label_smoothing = label_smoothing

    def build(self, arch, num_classes, **_):
        self.nets = [("net", CifarResNet(depth_of(arch), num_classes))]

    def forward_train(self, views, labels, clock):
        ce = F.cross_entropy(self.nets[0][1](views[0]), labels,
                             label_smoothing=self.label_smoothing)
        return ce, [("ce", ce)]


class DML(MethodBase):
    """K networks; L_k = CE(z_k, y) + 1/(K-1) sum_{l != k} T^2 KL_T(sg(z_l) || z_k), one forward
    and one simultaneous step of the sum (the PyTorch reproductions' order, okd's default)."""

    def __init__(self, peers=2, T=1.0, reduction="mean", sequential=False, teacher_eps=0.0):
        self.K, self.T, self.sequential, self.eps = peers, T, sequential, teacher_eps
        self.scale = T**2 / (peers - 1) if reduction == "mean" else T**2

    def build(self, arch, num_classes, **_):
        self.nets = [(f"net{k + 1}", CifarResNet(depth_of(arch), num_classes))
                     for k in range(self.K)]

    def loss_of(self, k, z, labels):
        ce = F.cross_entropy(z[k], labels)
        kl = sum(kl_batchmean(z[l].detach(), z[k], self.T, self.eps)
                 for l in range(self.K) if l != k)
        return ce, kl * self.scale

    def forward_train(self, views, labels, clock):
        self.x, self.labels = views[0], labels
        self.z = [net(views[0]) for _, net in self.nets]
        terms, total = [], 0
        for k in range(self.K):
            ce, kl = self.loss_of(k, self.z, labels)
            terms += [(f"ce_net{k + 1}", ce), (f"kl_net{k + 1}", kl)]
            total = total + ce + kl
        return total, terms

    def update(self, loss, terms, opt, clock):
        if not self.sequential:
            return super().update(loss, terms, opt, clock)
        # The paper's algorithm (classic.md §5 "Update order"): update net 1 on L_1, recompute
        # net 1's prediction with its new weights, update net 2 on L_2 against it, and so on. A
        # network's own logits are those of the step's first forward (it has not changed yet).
        # Following okd's documented choice (docs/methods/dml.md), the recomputation runs in
        # train mode but leaves the BN running statistics as they were, and the logged terms
        # stay those of forward_train.
        z = list(self.z)
        for k in range(self.K):
            ce, kl = self.loss_of(k, z, self.labels)
            opt.zero_grad(set_to_none=True)
            (ce + kl).backward(retain_graph=True)
            opt.step()  # only network k has gradients: the others are skipped entirely
            if k + 1 < self.K:
                net = self.nets[k][1]
                saved = [b.clone() for b in net.buffers()]
                with torch.no_grad():
                    z[k] = net(self.x)
                for b, v in zip(net.buffers(), saved):
                    b.copy_(v)


# (case name, okd's --method value with options, factory of the implementation, clocks,
# run_case keyword arguments)
CASES = [
    ("baseline", "baseline", Baseline, LATE, {}),
    ("dml", "dml", DML, LATE, {}),
    ("dml_k3_t2_nesterov", "dml:peers=3,T=2", lambda: DML(peers=3, T=2.0), LATE,
     {"nesterov": True}),
    ("dml_k3_sum", "dml:peers=3,peer_reduction=sum", lambda: DML(peers=3, reduction="sum"),
     LATE, {}),
    ("dml_sequential", "dml:update=sequential", lambda: DML(sequential=True), LATE, {}),
    # a large eps, so that another reading of it (only inside the log, renormalised) would show
    ("dml_teacher_eps", "dml:teacher_eps=1e-3,T=2", lambda: DML(teacher_eps=1e-3, T=2.0), LATE,
     {}),
    ("dml_k3_sequential", "dml:peers=3,update=sequential",
     lambda: DML(peers=3, sequential=True), LATE, {}),
    # Four steps of one epoch: steps 3 and 4 are replays of a captured step on a device.
    ("baseline_4steps", "baseline", Baseline, EPOCH3_4STEPS, {}),
    ("baseline_label_smoothing", "baseline:label-smoothing=0.1",
     lambda: Baseline(label_smoothing=0.1), LATE, {}),
    ("dml_4steps", "dml", DML, EPOCH3_4STEPS, {}),
]
