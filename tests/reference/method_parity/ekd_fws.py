"""EKD-FWSNet (seeds.md §2, with the building blocks of §1.2 KD, §1.4 att_sum_z, §1.7 option-A
shortcuts and §1.8 BN on re-entrant modules), written from the specification for method parity.

One network "net" holds the baseline ResNet ("base": stem, layer1..3, fc = fc_main) and the
classmate pieces: "cm_stage2" (a fresh stage-2 copy, attribute layer2), "cm_stage3" (a fresh
stage-3 copy, attribute layer3, SHARED by both classmate paths) and the heads "cm_head1",
"cm_head2" (attribute fc). Per step (§2.2, §2.3):

    h1 = layer1(stem(x)); h2 = layer2(h1); f_main = layer3(h2)
    f_cm1 = cm_layer3(cm_layer2(fa(h1)))     # first call of cm_layer3 (the official forward order)
    f_cm2 = cm_layer3(fa(h2))                # second call: BN running stats move twice (T5)
    z_k = fc_k(GAP(f_k))
    L = CE(z_main) + w_aux (CE(z_cm1) + CE(z_cm2))                     w_aux = 1/(B-1) = 0.5
      + KL_w * T^2 * KL_T(softmax(z_ens/T) || softmax(z_main/T)), mean over N*C (or batchmean)
      + att_w * mean_{N,H,W} (Â_main - (Â_main + Â_cm1 + Â_cm2)/3)^2
    z_ens = (z_main + z_cm1 + z_cm2)/3, NOT detached (gradient flows into the teacher) unless
    detach_teacher, which stops it at z_ens and at the attention teacher (§2.6 pitfall 2);
    Â = att_sum_z(f): channel sum, per-sample z-score over H*W with the unbiased std (§1.4).

The feature augmentation fa is dropout, p = 0.2 by default (§2.2): fa(h) = h * m / (1 - p) with
m ~ Bernoulli(1 - p), a fresh mask per classmate path (path 1's, then path 2's) in every training
forward. The masks are random draws, so this side takes them from okd's generator convention
(common.PhiloxStream, seeded as okd seeds the method's feature-augmentation generator: the run's
seed, 0 here, + 2000); what the cases check is where the dropout sits, its scale, one mask per
path and what the shared stage sees. fa_dropout=0 makes fa the identity.
Terms (okd's names): ce_main, ce_cm1, ce_cm2 (unweighted CE), kd (T^2 * reduced KL, before KL_w),
att (the attention MSE, before att_weight).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import BasicBlock, CifarResNet, Clock, LATE, MethodBase, PhiloxStream


class BasicBlockA(BasicBlock):
    """BasicBlock with the parameter-free option-A shortcut (§1.7): x[:, :, ::2, ::2] and
    C_out/4 zero channels on each side when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__(cin, cout, stride)
        self.shortcut = nn.Sequential()  # no 1x1 convolution: forward pads instead
        self.reshape = stride != 1 or cin != cout
        self.pad = cout // 4

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x
        if self.reshape:
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)
        return F.relu(out + sc)


def make_stage(cin, cout, blocks, stride, shortcut):
    block = BasicBlockA if shortcut == "A" else BasicBlock
    return nn.Sequential(*[block(cin if b == 0 else cout, cout, stride if b == 0 else 1)
                           for b in range(blocks)])


def att_sum_z(f):
    """§1.4: A = sum_c f[:, c] -> [N, H, W], z-scored per sample over the H*W positions with the
    unbiased std (divides by H*W - 1), no epsilon."""
    a = f.sum(1)
    flat = a.reshape(a.shape[0], -1)
    mean = flat.mean(1).reshape(-1, 1, 1)
    std = flat.std(1, unbiased=True).reshape(-1, 1, 1)
    return (a - mean) / std


def kd_loss(student, teacher, T, reduction):
    """§1.2 KD(s, t, T, reduction, detach_teacher=False): T^2 * reduce(p_t (log p_t - log p_s))."""
    log_pt = F.log_softmax(teacher / T, dim=1)
    log_ps = F.log_softmax(student / T, dim=1)
    elem = log_pt.exp() * (log_pt - log_ps)
    if reduction == "mean_all":
        red = elem.sum() / elem.numel()  # nn.KLDivLoss() default in the reference: mean over N*C
    elif reduction == "batchmean":
        red = elem.sum() / elem.shape[0]
    else:
        raise ValueError(reduction)
    return T * T * red


class Named(nn.Module):
    """A holder so that parameter names read cm_stage2.layer2.*, cm_head1.fc.*, as okd's."""

    def __init__(self, **mods):
        super().__init__()
        for k, m in mods.items():
            setattr(self, k, m)


class EkdFws(MethodBase):
    def __init__(self, kl_weight, T=3.0, att_weight=1.0, aux_ce_weight=None,
                 kl_reduction="mean_all", detach_teacher=False, shortcut="A", fa_dropout=0.2):
        self.fa_dropout = fa_dropout
        self.fa_gen = PhiloxStream(0 + 2000)  # okd: the run's seed + 2000
        self.kl_weight, self.T, self.att_weight = kl_weight, T, att_weight
        self.paths = 3
        # auto: 1/(B-1) per classmate CE (§2.3)
        self.aux_ce_weight = 1.0 / (self.paths - 1) if aux_ce_weight is None else aux_ce_weight
        self.kl_reduction, self.detach_teacher, self.shortcut = kl_reduction, detach_teacher, \
            shortcut

    def build(self, arch, num_classes, **_):
        depth = int(arch[len("resnet"):])
        n = (depth - 2) // 6
        base = CifarResNet(depth, num_classes)
        if self.shortcut == "A":  # layer1 (16->16, s1) has no shortcut either way
            base.layer2 = make_stage(16, 32, n, 2, "A")
            base.layer3 = make_stage(32, 64, n, 2, "A")
        net = Named(base=base,
                    cm_stage2=Named(layer2=make_stage(16, 32, n, 2, self.shortcut)),
                    cm_stage3=Named(layer3=make_stage(32, 64, n, 2, self.shortcut)),
                    cm_head1=Named(fc=nn.Linear(64, num_classes)),
                    cm_head2=Named(fc=nn.Linear(64, num_classes)))
        self.net = net
        self.nets = [("net", net)]

    def forward_train(self, views, labels, clock):
        net, base = self.net, self.net.base
        x = views[0]
        h1 = base.layer1(base.stem(x))
        h2 = base.layer2(h1)
        f_main = base.layer3(h2)
        p = self.fa_dropout

        def fa(h):  # inverted dropout; the identity when p = 0 (no draw)
            if p == 0:
                return h
            return h * (self.fa_gen.bernoulli(tuple(h.shape), 1.0 - p) * (1.0 / (1.0 - p)))

        f_cm1 = net.cm_stage3.layer3(net.cm_stage2.layer2(fa(h1)))
        f_cm2 = net.cm_stage3.layer3(fa(h2))

        def gap(f):
            return torch.flatten(F.adaptive_avg_pool2d(f, 1), 1)

        z_main = base.fc(gap(f_main))
        z_cm1 = net.cm_head1.fc(gap(f_cm1))
        z_cm2 = net.cm_head2.fc(gap(f_cm2))

        ce_main = F.cross_entropy(z_main, labels)
        ce_cm1 = F.cross_entropy(z_cm1, labels)
        ce_cm2 = F.cross_entropy(z_cm2, labels)

        z_ens = (z_main + z_cm1 + z_cm2) / 3
        if self.detach_teacher:
            z_ens = z_ens.detach()
        kd = kd_loss(z_main, z_ens, self.T, self.kl_reduction)

        a_main, a_cm1, a_cm2 = att_sum_z(f_main), att_sum_z(f_cm1), att_sum_z(f_cm2)
        a_teacher = (a_main + a_cm1 + a_cm2) / 3
        if self.detach_teacher:
            a_teacher = a_teacher.detach()
        att = ((a_main - a_teacher) ** 2).mean()  # nn.MSELoss(): mean over N*H*W

        loss = ce_main + self.aux_ce_weight * (ce_cm1 + ce_cm2) + self.kl_weight * kd \
            + self.att_weight * att
        return loss, [("ce_main", ce_main), ("ce_cm1", ce_cm1), ("ce_cm2", ce_cm2), ("kd", kd),
                      ("att", att)]


# Early, across an epoch boundary (nothing in EKD-FWSNet depends on the clock: this checks it).
EARLY = [Clock(3, 300, 9, 10), Clock(4, 300, 0, 10), Clock(4, 300, 1, 10)]

CASES = [
    # The reference configuration (option A, mean_all KL, T = 3, att 1, aux CE 0.5); KL_w = 15
    # as the CIFAR-10 ResNet-20..44 configs ("auto" would pick by dataset).
    ("ekd_fws", "ekd-fws:fa_dropout=0,kl_weight=15",
     lambda: EkdFws(kl_weight=15.0, fa_dropout=0.0), LATE, {}),
    ("ekd_fws_kl60_early", "ekd-fws:fa_dropout=0,kl_weight=60",
     lambda: EkdFws(kl_weight=60.0, fa_dropout=0.0), EARLY, {}),
    # Every documented variant at once: batchmean KL, other T and weights, detached teachers,
    # option-B shortcuts, Nesterov.
    ("ekd_fws_variants_nesterov",
     "ekd-fws:fa_dropout=0,kl_weight=1.5,kl_reduction=batchmean,T=2,att_weight=0.5,"
     "aux_ce_weight=0.3,detach_teacher=true,shortcut=B",
     lambda: EkdFws(kl_weight=1.5, T=2.0, att_weight=0.5, aux_ce_weight=0.3,
                    kl_reduction="batchmean", detach_teacher=True, shortcut="B",
                    fa_dropout=0.0),
     LATE, {"nesterov": True}),
    # Stages of several blocks (n = 3): the shared cm_layer3 has 6 BNs, each run twice per step.
    ("ekd_fws_resnet20", "ekd-fws:fa_dropout=0,kl_weight=15,att_weight=2",
     lambda: EkdFws(kl_weight=15.0, att_weight=2.0, fa_dropout=0.0), LATE, {"arch": "resnet20"}),
    # The default feature augmentation (dropout 0.2 on each classmate path's input), two steps.
    ("ekd_fws_fa_dropout", "ekd-fws:kl_weight=15", lambda: EkdFws(kl_weight=15.0), LATE, {}),
    # p = 0.5 on ResNet-20 over three steps, across an epoch boundary.
    ("ekd_fws_resnet20_fa_dropout0.5", "ekd-fws:kl_weight=15,fa_dropout=0.5",
     lambda: EkdFws(kl_weight=15.0, fa_dropout=0.5), EARLY, {"arch": "resnet20"}),
]
