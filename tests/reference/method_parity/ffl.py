"""FFL (Feature Fusion for online mutual Learning), written from the specification for method
parity: shared/methods/seeds.md §3 (architecture §3.2, losses §3.3, optimizers §3.4) with the
shared blocks of §1 (the KD primitive with eps_on_teacher, §1.2; sigmoid_rampup, §1.5; option-B
CIFAR ResNet, §1.7). Facts checked against the official code (Jangho-Kim/FFL-pytorch): the
teacher of every KD term is a detached copy of softmax_T + 1e-7, the fusion inputs are not
detached, and one backward of the total loss is followed by both optimizers' steps.

Networks, under okd's names (method_layout 'ffl'):
  net    = base: a whole CifarResNet whose stem, layer1, layer2 are the shared trunk and whose
           layer3 + fc are sub-network 1 (FFL-S, the deployed one);
           branch1: layer3 + fc of sub-network 2 (share_trunk=false: a whole second CifarResNet)
  fusion = fuse.{dwconv, bn1, pwconv, bn2} and fc: the fusion module with the fused classifier.
Parameter groups: the networks at the run's weight decay, the fusion module at ffl.fusion_wd.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import EPOCH3_4STEPS, CifarResNet, Clock, LATE, MethodBase, depth_of, sigmoid_rampup


def kd_ffl(student, teacher, T, eps):
    """seeds.md §1.2 with reduction batchmean, detach_teacher, eps_on_teacher:
    p_t = softmax(sg(t)/T) + eps (not renormalised);
    T^2 * sum_{n,c} p_t (log p_t - log_softmax(s/T)) / N."""
    p_t = F.softmax(teacher.detach() / T, dim=1) + eps
    log_s = F.log_softmax(student / T, dim=1)
    return T * T * (p_t * (p_t.log() - log_s)).sum() / student.shape[0]


class FusionModule(nn.Module):
    """seeds.md §3.2: concat(f1, f2) [N, 2c, s, s] -> depthwise 3x3 (groups 2c, no bias) -> BN ->
    ReLU -> pointwise 1x1 2c->c (no bias) -> BN -> ReLU -> average pool over the s x s map ->
    FC(c -> C). The parameter names are okd's (fuse.*, fc.*)."""

    def __init__(self, c, num_classes):
        super().__init__()
        self.fuse = nn.Module()
        self.fuse.dwconv = nn.Conv2d(2 * c, 2 * c, 3, 1, 1, groups=2 * c, bias=False)
        self.fuse.bn1 = nn.BatchNorm2d(2 * c)
        self.fuse.pwconv = nn.Conv2d(2 * c, c, 1, 1, 0, bias=False)
        self.fuse.bn2 = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, f1, f2):
        x = torch.cat([f1, f2], dim=1)  # sub-network 1's channels first
        x = F.relu(self.fuse.bn1(self.fuse.dwconv(x)))
        x = F.relu(self.fuse.bn2(self.fuse.pwconv(x)))
        # The reference's avg_pool2d(x, s) with s the map's size: a global average.
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class FFLNet(nn.Module):
    """The 'net' network: base (trunk + sub-network 1) and branch1 (sub-network 2)."""

    def __init__(self, depth, num_classes, share_trunk):
        super().__init__()
        self.share_trunk = share_trunk
        self.base = CifarResNet(depth, num_classes)
        if share_trunk:
            self.branch1 = nn.Module()
            self.branch1.layer3 = copy.deepcopy(self.base.layer3)  # same construction
            self.branch1.fc = nn.Linear(64, num_classes)
        else:
            self.branch1 = CifarResNet(depth, num_classes)

    def forward(self, x):
        """(z1, z2, f1, f2): logits and layer3 outputs of the two sub-networks."""
        if self.share_trunk:
            h = self.base.run_stages(0, 2, x)  # shared stem, layer1, layer2: one call per step
            f1 = self.base.layer3(h)
            f2 = self.branch1.layer3(h)
            z2 = self.branch1.fc(torch.flatten(F.adaptive_avg_pool2d(f2, 1), 1))
        else:
            f1 = self.base.run_stages(0, 3, x)
            f2 = self.branch1.run_stages(0, 3, x)
            z2 = self.branch1.head(f2)
        z1 = self.base.head(f1)
        return z1, z2, f1, f2


class FFL(MethodBase):
    """seeds.md §3.3:
    L = CE(z1) + CE(z2) + CE(zf)
        + w(e) [KDf(z1 <- zf) + KDf(z2 <- zf) + KDf(zf <- (z1 + z2)/2)],
    w(e) = sigmoid_rampup(epoch, rampup_epochs), KDf = kd_ffl (teachers detached), fusion inputs
    not detached. One backward, then both optimizers step: SGD steps are per parameter, so one
    SGD with two parameter groups (fusion at fusion_wd) is the same update (§3.4).
    Terms: ce_sub1, ce_sub2, ce_fused, the unweighted kd_sub1, kd_sub2, kd_fused, and w_rampup."""

    def __init__(self, T=3.0, teacher_eps=1e-7, rampup_epochs=80, share_trunk=True,
                 fusion_wd=1e-5):
        self.T, self.eps, self.rampup = T, teacher_eps, rampup_epochs
        self.share_trunk, self.fusion_wd = share_trunk, fusion_wd

    def build(self, arch, num_classes, **_):
        self.net = FFLNet(depth_of(arch), num_classes, self.share_trunk)
        self.fusion = FusionModule(64, num_classes)
        self.nets = [("net", self.net), ("fusion", self.fusion)]

    def param_groups(self):
        return [{"params": list(self.net.parameters())},
                {"params": list(self.fusion.parameters()), "weight_decay": self.fusion_wd}]

    def forward_train(self, views, labels, clock):
        z1, z2, f1, f2 = self.net(views[0])
        zf = self.fusion(f1, f2)
        z_ens = (z1 + z2) / 2  # logit average (§3.6 pitfall 2)
        w = sigmoid_rampup(clock.epoch, self.rampup)
        ce = [F.cross_entropy(z, labels) for z in (z1, z2, zf)]
        kd = [kd_ffl(z1, zf, self.T, self.eps), kd_ffl(z2, zf, self.T, self.eps),
              kd_ffl(zf, z_ens, self.T, self.eps)]
        loss = ce[0] + ce[1] + ce[2] + w * (kd[0] + kd[1] + kd[2])
        terms = [("ce_sub1", ce[0]), ("ce_sub2", ce[1]), ("ce_fused", ce[2]),
                 ("kd_sub1", kd[0]), ("kd_sub2", kd[1]), ("kd_fused", kd[2]),
                 ("w_rampup", torch.tensor(w, dtype=torch.float64))]
        return loss, terms


# Inside the ramp-up, across an epoch boundary (w(3) then w(4)).
RAMP = [Clock(3, 300, 9, 10), Clock(4, 300, 0, 10)]
# Inside a 40-epoch ramp-up.
RAMP40 = [Clock(10, 300, 0, 10), Clock(10, 300, 1, 10)]

CASES = [
    ("ffl", "ffl", FFL, LATE, {}),
    ("ffl_rampup", "ffl", FFL, RAMP, {}),
    ("ffl_sep_t2_nesterov",
     "ffl:T=2,teacher_eps=1e-4,rampup_epochs=40,share_trunk=false,fusion_wd=1e-4",
     lambda: FFL(T=2.0, teacher_eps=1e-4, rampup_epochs=40, share_trunk=False, fusion_wd=1e-4),
     RAMP40, {"nesterov": True, "weight_decay": 1e-4}),
    # Four steps of one epoch: steps 3 and 4 are replays of a captured step on a device.
    ("ffl_4steps", "ffl", FFL, EPOCH3_4STEPS, {}),
]
