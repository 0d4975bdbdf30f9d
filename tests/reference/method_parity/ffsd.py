"""FFSD (Feature Fusion and Self-Distillation, with a leader student), written for method parity
from shared/methods/seeds.md §5 (architecture §5.2, the iteration §5.3, hyper-parameters §5.4,
pitfalls §5.6) and the shared blocks of §1 (KL §1.2, attention maps and AL §1.4, warm-up §1.5,
backbone §1.7). Facts the spec leaves implicit were read from the official code (SJLeo/FFSD,
CIFARTrainer.py, models/*.py), never copied.

Networks in okd's order: student1..M (plain CIFAR ResNets), leader (base = the backbone,
transfusion = TransFusion head on its stage-3 output), fusion (fuse = depthwise-separable fusion
of the detached stage-3 maps, fc = its classifier), decoders (one transposed-conv decoder per
non-first student, named studentI, and one named leader).

The iteration follows §5.3 literally: students 1..M each with their own backward and step, then
the fusion module, then the leader, then the decoders (Adam). Every loss uses the activations of
the forward passes at the start of the iteration, and the decoders do not change before their
own step, so all losses are computed in forward_train (in the reference's order of forward
passes: the decoders' eval-mode forwards for the SD targets come before their train-mode forwards,
which update their BN running statistics) and update() runs the backward/step stages in order,
checking after each backward that no gradient reached another stage's parameters (§5.7 T7).

Term names are okd's (method_layout --probe); terms are the unweighted losses, the stage losses
that are stepped carry the weights, and the step's loss is the sum of all the stage losses:
  L_i  = ce_si + dml_si [+ λ_div div_si + w_ssd sd_si for i >= 2]
  L_FM = ce_fusion + kd_fusion
  L_L  = ce_leader + kd_leader + λ_fus (att_leader + trans_leader + sd_leader)
  L_D  = λ_sd decoders     (decoders: the sum over every decoder of Σ_k [AL(R_k, F_k) +
                            AL(a(R_k), a(F_k))])
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import EPOCH3_4STEPS, CifarResNet, Clock, LATE, MethodBase, depth_of, kl_batchmean


# --- shared blocks (§1) --------------------------------------------------------------------------


def att(f):
    """att_meansq (§1.4): channel mean of squares, [N, 1, H, W]."""
    return f.pow(2).mean(1, keepdim=True)


def l2n(x):
    """Each sample flattened and divided by max(||v||_2, 1e-12) (§1.4)."""
    v = x.reshape(x.shape[0], -1)
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)


def al(x, y):
    """AL(x, y) = mean over all N·D elements of (l2n(x) - l2n(y))^2 (§1.4)."""
    return (l2n(x) - l2n(y)).pow(2).mean()


def shifted_target(y):
    """§5.3 diversity target for an UN-normalised attention map y [N, 1, H, W]:
    n_y = ||y||, ŷ = l2n(y), thr = k-th smallest of ŷ (k = floor(HW/3)),
    y' = (n_y/2 - ŷ) sign(ŷ - thr) + n_y/2. Returns (y', ŷ, n_y), [N, HW] and [N, 1]."""
    v = y.reshape(y.shape[0], -1)
    n_y = v.norm(dim=1, keepdim=True)
    y_hat = l2n(y)
    k = v.shape[1] // 3
    thr = torch.sort(y_hat, dim=1).values[:, k - 1:k]  # the k-th smallest (1-based k)
    y_prime = (n_y / 2 - y_hat) * torch.sign(y_hat - thr) + n_y / 2
    return y_prime, y_hat, n_y


def div_loss(x, y):
    """DIV(x, y) = mean over N·HW of (l2n(x) - y')^2, y' the shifted target of y (detached)."""
    y_prime, _, _ = shifted_target(y.detach())
    return (l2n(x) - y_prime).pow(2).mean()


def shifted_input(Y):
    """DT(Y) (§5.3): Y + (y' - ŷ) · n_y / c, broadcast over the c channels, y = a(Y).
    [REF-QUIRK] mixes the unnormalised norm n_y with unit-norm values, kept as specified."""
    Y = Y.detach()
    y = att(Y)
    y_prime, y_hat, n_y = shifted_target(y)
    diff = (y_prime - y_hat) * n_y / Y.shape[1]
    return Y + diff.reshape(y.shape)


def warmup_factor(e, length):
    """§1.5 / §5.4: exp(-5 (1 - e/L)^2) for e <= L, else 1; e counts epochs from 1."""
    return math.exp(-5.0 * (1.0 - e / length) ** 2) if e <= length else 1.0


# --- modules (§5.2) ------------------------------------------------------------------------------


class SepFusion(nn.Module):
    """dwconv3x3(cin, groups cin, no bias) -> BN -> ReLU -> conv1x1(cin -> cout, no bias) -> BN
    -> ReLU: the fusion module's trunk (cin = M·c, cout = c) and TransFusion (c -> M·c)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.dwconv = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pwconv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn2(self.pwconv(F.relu(self.bn1(self.dwconv(x))))))


class Leader(nn.Module):
    def __init__(self, depth, num_classes, students):
        super().__init__()
        self.base = CifarResNet(depth, num_classes)
        c = CifarResNet.widths[-1]
        self.transfusion = SepFusion(c, students * c)


class Fusion(nn.Module):
    """FM: G = fuse(X), z_F = fc(avgpool(G)) (global average pool: 8x8 at 32 pixels)."""

    def __init__(self, c, students, num_classes):
        super().__init__()
        self.fuse = SepFusion(students * c, c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        g = self.fuse(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(g, 1), 1)), g


class Decoder(nn.Module):
    """(stages - 1) up-blocks ConvT(k3, s2, p1, output_padding 1, no bias) -> BN -> ReLU, each
    halving the channels. Returns the outputs REVERSED: [finest (stage-1 size), ..., stage-2 size]."""

    def __init__(self, c, blocks):
        super().__init__()
        for i in range(blocks):
            setattr(self, f"up{i}", nn.Sequential(
                nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=False),
                nn.BatchNorm2d(c // 2), nn.ReLU()))
            c //= 2
        self.blocks = blocks

    def forward(self, x):
        outs = []
        for i in range(self.blocks):
            x = getattr(self, f"up{i}")(x)
            outs.append(x)
        return outs[::-1]


class Decoders(nn.Module):
    def __init__(self, names, c, blocks):
        super().__init__()
        self.names = names
        for n in names:
            setattr(self, n, Decoder(c, blocks))


def sdl(decoder, taps, inp):
    """SDL(D, [F_1, F_2], input) (§5.3): D in eval mode (running BN statistics), R = D(sg(input))
    reversed, Σ_k AL(a(F_k), sg(a(R_k))). Gradient only into the taps."""
    decoder.eval()
    rs = decoder(inp.detach())
    return sum(al(att(f), att(r).detach()) for f, r in zip(taps, rs))


def decoder_loss(decoder, taps3, taps):
    """§5.3 step 6 (unweighted): D in train mode on sg(F_3) of its own network,
    Σ_k [AL(R_k, sg(F_k)) + AL(a(R_k), a(sg(F_k)))] (whole maps, then attention maps)."""
    decoder.train()
    rs = decoder(taps3.detach())
    return sum(al(r, f.detach()) + al(att(r), att(f.detach())) for f, r in zip(taps, rs))


# --- the method ----------------------------------------------------------------------------------


class FFSD(MethodBase):
    def __init__(self, num_students=2, T=2.0, lambda_div=1e-5, lambda_sd=1000.0,
                 lambda_fusion=10.0, student_sd_weight=None, warmup_epochs=5, fusion_wd=1e-5,
                 decoder_lr=1e-3, decoder_wd=1e-4):
        self.M, self.T = num_students, T
        self.lambda_div, self.lambda_sd, self.lambda_fusion = lambda_div, lambda_sd, lambda_fusion
        self.student_sd_weight = student_sd_weight  # None: λ_div (the reference's [REF-QUIRK])
        self.warmup_epochs = warmup_epochs
        self.fusion_wd, self.decoder_lr, self.decoder_wd = fusion_wd, decoder_lr, decoder_wd
        self.adam = None

    def build(self, arch, num_classes, **_):
        depth = depth_of(arch)
        c = CifarResNet.widths[-1]
        self.students = [CifarResNet(depth, num_classes) for _ in range(self.M)]
        self.leader = Leader(depth, num_classes, self.M)
        self.fusion = Fusion(c, self.M, num_classes)
        # Decoders for students 2..M and the leader; stages 1..3, so two up-blocks.
        self.decoders = Decoders([f"student{i + 1}" for i in range(1, self.M)] + ["leader"], c, 2)
        self.nets = [(f"student{i + 1}", s) for i, s in enumerate(self.students)] + [
            ("leader", self.leader), ("fusion", self.fusion), ("decoders", self.decoders)]

    def param_groups(self):
        # SGD: the students and the leader (with TransFusion) at the run's weight decay, the
        # fusion module at its own (1e-5). The decoders have their own Adam (below).
        nets = [p for s in self.students for p in s.parameters()] + list(self.leader.parameters())
        return [{"params": nets}, {"params": list(self.fusion.parameters()),
                                   "weight_decay": self.fusion_wd}]

    def _adam(self):
        if self.adam is None:  # after run_case's .to(float64) and det_init
            # Adam(lr 1e-3, betas (0.9, 0.999), eps 1e-8, coupled L2 1e-4); the reference has
            # one Adam per decoder, the same thing per parameter.
            self.adam = torch.optim.Adam(self.decoders.parameters(), lr=self.decoder_lr,
                                         betas=(0.9, 0.999), eps=1e-8,
                                         weight_decay=self.decoder_wd)
        return self.adam

    def forward_train(self, views, labels, clock):
        x, y, T, M = views[0], labels, self.T, self.M
        w = warmup_factor(clock.epoch + 1, self.warmup_epochs)  # okd's epochs count from 0
        lam_div, lam_fus, lam_sd = self.lambda_div * w, self.lambda_fusion * w, self.lambda_sd * w
        lam_ssd = lam_div if self.student_sd_weight is None else self.student_sd_weight * w

        # 1. Leader: z_L, taps [L1, L2, L3], Tr_L = TransFusion(L3).
        lt = self.leader.base.forward_taps(x)
        z_L, L1, L2, L3 = lt[4], lt[1], lt[2], lt[3]
        tr_L = self.leader.transfusion(L3)
        # 2. Students, then FM on X = concat(sg(F_i3)).
        st = [s.forward_taps(x) for s in self.students]
        z = [t[4] for t in st]
        X = torch.cat([t[3].detach() for t in st], dim=1)
        z_F, G = self.fusion(X)
        z_avg = sum(z) / M

        terms, stages = [], []
        # 3. Students: L_i = CE + (T^2/(M-1)) Σ_{j≠i} KLbm(sg z_j || z_i)
        #    [+ λ_div DIV(a(F_i3), a(sg F_{i-1,3})) + w_ssd SDL(D_i, [F_i1, F_i2], DT(sg F_{i-1,3}))]
        for i in range(M):
            ce = F.cross_entropy(z[i], y)
            dml = sum(kl_batchmean(z[j].detach(), z[i], T) for j in range(M) if j != i) * (
                T**2 / (M - 1))
            terms += [(f"ce_s{i + 1}", ce), (f"dml_s{i + 1}", dml)]
            loss_i = ce + dml
            if i >= 1:
                prev3 = st[i - 1][3].detach()
                div = div_loss(att(st[i][3]), att(prev3))
                sd = sdl(getattr(self.decoders, f"student{i + 1}"), [st[i][1], st[i][2]],
                         shifted_input(prev3))
                terms += [(f"div_s{i + 1}", div), (f"sd_s{i + 1}", sd)]
                loss_i = loss_i + lam_div * div + lam_ssd * sd
            stages.append(("student", i, loss_i))
        # 4. Fusion module: CE(z_F) + T^2 KLbm(sg z_avg || z_F).
        ce_f = F.cross_entropy(z_F, y)
        kd_f = T**2 * kl_batchmean(z_avg.detach(), z_F, T)
        terms += [("ce_fusion", ce_f), ("kd_fusion", kd_f)]
        stages.append(("fusion", None, ce_f + kd_f))
        # 5. Leader: CE + T^2 KLbm(sg z_F || z_L) + λ_fus [AL(a(L3), sg a(G)) + AL(a(Tr_L), a(X))
        #    + SDL(D_L, [L1, L2], sg G)].
        ce_l = F.cross_entropy(z_L, y)
        kd_l = T**2 * kl_batchmean(z_F.detach(), z_L, T)
        att_l = al(att(L3), att(G).detach())
        trans_l = al(att(tr_L), att(X))
        sd_l = sdl(self.decoders.leader, [L1, L2], G.detach())
        terms += [("ce_leader", ce_l), ("kd_leader", kd_l), ("att_leader", att_l),
                  ("trans_leader", trans_l), ("sd_leader", sd_l)]
        stages.append(("leader", None, ce_l + kd_l + lam_fus * (att_l + trans_l + sd_l)))
        # 6. Decoders (train mode, after the eval-mode SD forwards above): the students' decoders
        #    on their own student's taps, then the leader's on the leader's taps.
        dec = sum(decoder_loss(getattr(self.decoders, f"student{i + 1}"), st[i][3],
                               [st[i][1], st[i][2]]) for i in range(1, M))
        dec = dec + decoder_loss(self.decoders.leader, L3, [L1, L2])
        terms += [("decoders", dec), ("w_warmup", torch.tensor(w, dtype=x.dtype))]
        stages.append(("decoders", None, lam_sd * dec))

        self._stages = stages
        return sum(l for _, _, l in stages), terms

    def _owned(self, kind, i):
        net = {"student": lambda: self.students[i], "fusion": lambda: self.fusion,
               "leader": lambda: self.leader, "decoders": lambda: self.decoders}[kind]()
        return {id(p) for p in net.parameters()}

    def _all_params(self):
        return [p for _, n in self.nets for p in n.parameters()]

    def update(self, loss, terms, opt, clock):
        adam = self._adam()
        for g in adam.param_groups:
            g["lr"] = self.decoder_lr * clock.lr_factor  # the decoders follow the lr schedule
        for kind, i, stage_loss in self._stages:
            for p in self._all_params():
                p.grad = None
            stage_loss.backward()
            # T7: this stage's backward reached only its own parameters.
            owned = self._owned(kind, i)
            leaked = [p.shape for p in self._all_params() if p.grad is not None
                      and id(p) not in owned]
            assert not leaked, f"{kind}{i}: gradient leaked into {leaked}"
            # SGD steps only parameters that have a gradient: this stage's own.
            (adam if kind == "decoders" else opt).step()
        self._stages = None


# Inside the 5-epoch warm-up, across an epoch boundary: okd's epochs 1 and 2 = the reference's
# e = 2 and 3 (factors 0.1653, 0.4493).
WARMUP = [Clock(1, 300, 9, 10), Clock(2, 300, 0, 10)]
# Inside a 10-epoch warm-up (e = 5), after the first lr milestone (lr factor 0.1: the decoders'
# Adam lr follows it).
MID = [Clock(4, 300, 3, 10, 0.1), Clock(4, 300, 4, 10, 0.1)]

CASES = [
    ("ffsd", "ffsd", FFSD, LATE, {}),
    ("ffsd_warmup", "ffsd", FFSD, WARMUP, {}),
    # Heavier diversity and student self-distillation so that DIV and DT shape the gradients.
    ("ffsd_t3_div_ssd_nesterov", "ffsd:T=3,lambda_div=0.01,student_sd_weight=2",
     lambda: FFSD(T=3.0, lambda_div=0.01, student_sd_weight=2.0), LATE, {"nesterov": True}),
    ("ffsd_m3_options", "ffsd:num_students=3,lambda_div=0.05,lambda_sd=100,lambda_fusion=5,"
     "warmup_epochs=10,fusion_wd=1e-3,decoder_lr=0.01,decoder_wd=1e-3",
     lambda: FFSD(num_students=3, lambda_div=0.05, lambda_sd=100.0, lambda_fusion=5.0,
                  warmup_epochs=10, fusion_wd=1e-3, decoder_lr=0.01, decoder_wd=1e-3), MID, {}),
    # Four steps of one epoch: steps 3 and 4 are replays of a captured step on a device.
    ("ffsd_4steps", "ffsd", FFSD, EPOCH3_4STEPS, {}),
]
