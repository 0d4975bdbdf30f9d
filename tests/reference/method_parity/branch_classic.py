"""ONE (classic.md §6) and OKDDip (classic.md §8), written from the specification for method parity.

Shared conventions used: the KD term T^2 * KL_T(t || s) with batchmean (§1.1), the sigmoid
ramp-up w(e) = exp(-5 (1 - clip(e, 0, L)/L)^2) on the 0-based epoch (§1.3), and the multi-branch
surgery of §2.4: the trunk (stem + stages 1-2) is shared and stage 3 + the classifier are copied
per branch, each copy initialised independently. Facts checked in the official OKDDip code
(DefangChen/OKDDip, models/model_cifar/resnet_GL.py and train_GL.py): the attention is per
sample over the peers' pooled features, t_i = sum_j a_ij z_j, the leader is the last branch and
does not enter the attention, and the leader's target is the mean of the peers' logits.

okd's layout (build/tests/method_layout): one network "net" holding "net.base" (a whole CIFAR
ResNet whose stage 3 and fc are the first branch), "net.branch1".. (the other copies of stage 3
+ fc), and the method's own modules (ONE: gate_fc, gate_bn; OKDDip: query, key).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (
    EPOCH3_4STEPS, CifarResNet, Clock, LATE, MethodBase, depth_of, make_layer, sigmoid_rampup)


def kd_term(teacher_logits, student_logits, T, eps=0.0):
    """T^2 * KL_T(t || s), batchmean (§1.1). eps (the official codes' 1e-7, off by default) is
    added to the teacher probabilities p before p (log p - log q)."""
    p = F.softmax(teacher_logits / T, dim=1)
    if eps:
        p = p + eps
    q_log = F.log_softmax(student_logits / T, dim=1)
    return T * T * (p * (p.log() - q_log)).sum(1).mean()


class Branch(nn.Module):
    """A copy of stage 3 + GAP + FC (the names of CifarResNet's layer3 and fc)."""

    def __init__(self, blocks, num_classes):
        super().__init__()
        self.layer3 = make_layer(32, 64, blocks, 2)
        self.fc = nn.Linear(64, num_classes)

    def features(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(self.layer3(x), 1), 1)


class MultiBranchNet(nn.Module):
    """net.base (trunk + branch 1) and net.branch1..net.branch{n-1} (branches 2..n)."""

    def __init__(self, depth, num_classes, branches):
        super().__init__()
        self.base = CifarResNet(depth, num_classes)
        for k in range(1, branches):
            setattr(self, f"branch{k}", Branch(self.base.blocks, num_classes))
        self.n = branches

    def trunk(self, x):
        return self.base.run_stages(0, 2, x)

    def branch_features(self, k, h):
        """Pooled 64-d feature of branch k (0-based) from the trunk output h."""
        if k == 0:
            return torch.flatten(F.adaptive_avg_pool2d(self.base.layer3(h), 1), 1)
        return getattr(self, f"branch{k}").features(h)

    def branch_fc(self, k, f):
        return self.base.fc(f) if k == 0 else getattr(self, f"branch{k}").fc(f)


class OneNet(nn.Module):
    def __init__(self, depth, num_classes, branches):
        super().__init__()
        self.net = MultiBranchNet(depth, num_classes, branches)
        # Gate: GAP(trunk) -> FC(32 -> m, bias) -> BN1d(m) -> ReLU -> softmax over branches.
        self.gate_fc = nn.Linear(32, branches)
        self.gate_bn = nn.BatchNorm1d(branches)


class ONE(MethodBase):
    """L = sum_i CE(z_i, y) + CE(z_e, y) + w(e) T^2 sum_i KL_T(sg(z_e) || z_i), with
    z_e = sum_i g_i z_i (per-sample gate weights on logits). detach_teacher=False is okd's
    documented variant (the OKDDip re-implementation): the KL then also trains the gate."""

    def __init__(self, branches=3, T=3.0, rampup_epochs=80, detach_teacher=True, teacher_eps=0.0):
        self.m, self.T, self.L = branches, T, rampup_epochs
        self.detach, self.eps = detach_teacher, teacher_eps

    def build(self, arch, num_classes, **_):
        self.model = OneNet(depth_of(arch), num_classes, self.m)
        self.nets = [("net", self.model)]

    def forward_train(self, views, labels, clock):
        mdl = self.model
        h = mdl.net.trunk(views[0])
        z = [mdl.net.branch_fc(k, mdl.net.branch_features(k, h)) for k in range(self.m)]
        g = F.softmax(F.relu(mdl.gate_bn(mdl.gate_fc(torch.flatten(
            F.adaptive_avg_pool2d(h, 1), 1)))), dim=1)                         # B x m
        z_e = sum(g[:, k:k + 1] * z[k] for k in range(self.m))                # B x C
        w = sigmoid_rampup(clock.epoch, self.L)
        teacher = z_e.detach() if self.detach else z_e
        ces = [F.cross_entropy(z[k], labels) for k in range(self.m)]
        ce_e = F.cross_entropy(z_e, labels)
        kl = sum(kd_term(teacher, z[k], self.T, self.eps) for k in range(self.m))
        loss = sum(ces) + ce_e + w * kl
        terms = [(f"ce_branch{k + 1}", ces[k]) for k in range(self.m)]
        terms += [("ce_ensemble", ce_e), ("kl", kl), ("w_rampup", torch.tensor(w, dtype=torch.float64))]
        return loss, terms


class OkddipNet(nn.Module):
    def __init__(self, depth, num_classes, peers):
        super().__init__()
        self.net = MultiBranchNet(depth, num_classes, peers + 1)  # the leader is the last
        d = 64
        self.query = nn.Linear(d, d // 8, bias=False)  # W_q
        self.key = nn.Linear(d, d // 8, bias=False)    # W_k


class OKDDip(MethodBase):
    """L = sum_i CE(z_i, y) + CE(z_L, y)
           + alpha w(e) [ sum_i T^2 KL_T(t_i || z_i) + T^2 KL_T(mean_i z_i || z_L) ],
    t_i = sum_j a_ij z_j, a_ij = softmax_j(q_i . k_j) per sample over the peers (j = i
    included, no 1/sqrt(d)), q_i = W_q h_i, k_i = W_k h_i. Nothing detached by default."""

    def __init__(self, peers=3, T=3.0, alpha=1.0, rampup_epochs=80, detach_targets=False,
                 teacher_eps=0.0):
        self.P, self.T, self.alpha, self.L = peers, T, alpha, rampup_epochs
        self.detach, self.eps = detach_targets, teacher_eps

    def build(self, arch, num_classes, **_):
        self.model = OkddipNet(depth_of(arch), num_classes, self.P)
        self.nets = [("net", self.model)]

    def forward_train(self, views, labels, clock):
        mdl, P = self.model, self.P
        h = mdl.net.trunk(views[0])
        feats = [mdl.net.branch_features(k, h) for k in range(P + 1)]
        z = [mdl.net.branch_fc(k, feats[k]) for k in range(P + 1)]
        peers, leader = z[:P], z[P]
        q = torch.stack([mdl.query(feats[k]) for k in range(P)], 1)    # B x P x d/8
        k_ = torch.stack([mdl.key(feats[k]) for k in range(P)], 1)     # B x P x d/8
        a = F.softmax(torch.bmm(q, k_.transpose(1, 2)), dim=2)          # a[b,i,j]
        zp = torch.stack(peers, 2)                                       # B x C x P
        targets = torch.bmm(zp, a.transpose(1, 2))                       # [:, :, i] = sum_j a_ij z_j
        mean = zp.mean(2)
        if self.detach:
            targets, mean = targets.detach(), mean.detach()
        w = sigmoid_rampup(clock.epoch, self.L)
        ces = [F.cross_entropy(peers[i], labels) for i in range(P)]
        ce_l = F.cross_entropy(leader, labels)
        kl_peers = sum(kd_term(targets[:, :, i], peers[i], self.T, self.eps) for i in range(P))
        kl_leader = kd_term(mean, leader, self.T, self.eps)
        loss = sum(ces) + ce_l + self.alpha * w * (kl_peers + kl_leader)
        terms = [(f"ce_peer{i + 1}", ces[i]) for i in range(P)]
        terms += [("ce_leader", ce_l), ("kl_peers", kl_peers), ("kl_leader", kl_leader),
                  ("w_rampup", torch.tensor(w, dtype=torch.float64))]
        return loss, terms


# Inside the 80-epoch ramp-up (epoch 3 of 300); LATE (common.py) is past it.
RAMP = [Clock(3, 300, 0, 10), Clock(3, 300, 1, 10)]
# Crosses an epoch boundary inside a 40-epoch ramp-up: w changes between the two steps.
RAMP_CROSS = [Clock(9, 300, 9, 10), Clock(10, 300, 0, 10)]

CASES = [
    ("one", "one", ONE, LATE, {}),
    ("one_rampup", "one", ONE, RAMP, {}),
    ("one_m4_t2_nodetach_nesterov", "one:branches=4,T=2,detach_teacher=false",
     lambda: ONE(branches=4, T=2.0, detach_teacher=False), LATE, {"nesterov": True}),
    ("one_eps_ramp40", "one:teacher_eps=1e-7,rampup_epochs=40",
     lambda: ONE(teacher_eps=1e-7, rampup_epochs=40), RAMP_CROSS, {}),
    ("okddip", "okddip", OKDDip, LATE, {"nesterov": True}),
    ("okddip_rampup", "okddip", OKDDip, RAMP, {"nesterov": True}),
    ("okddip_p4_t2_alpha05_detach", "okddip:peers=4,T=2,alpha=0.5,detach_targets=true",
     lambda: OKDDip(peers=4, T=2.0, alpha=0.5, detach_targets=True), LATE, {}),
    ("okddip_eps_ramp40", "okddip:teacher_eps=1e-7,rampup_epochs=40,alpha=2",
     lambda: OKDDip(teacher_eps=1e-7, rampup_epochs=40, alpha=2.0), RAMP_CROSS,
     {"nesterov": True}),
    # Four steps of one epoch: steps 3 and 4 are replays of a captured step on a device.
    ("one_4steps", "one", ONE, EPOCH3_4STEPS, {}),
    ("okddip_4steps", "okddip", OKDDip, EPOCH3_4STEPS, {"nesterov": True}),
]
