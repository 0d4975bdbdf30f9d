"""KDCL, PCL and CL-ILR, written from the specification for method parity.

- KDCL: classic.md §9 (students on their own views, MinLogit / Naive / Linear / mean ensembles,
  L = sum_i CE(z_i, y) + lambda T^2 KL_T(sg(z_t) || z_i)).
- PCL: classic.md §10 (trunk once per view, peers on stage 3, ensemble head on the concatenated
  pooled features, EMA peers as mean teachers, §1.3 ramp-up, §1.4 EMA).
- CL-ILR: classic.md §7 (heads on a shared trunk with backpropagation rescaling, hierarchical
  1-2-4 tree or simple split at the last stage, §2.4; the paper and okddip variants).
with §1.1 (KD term, batchmean KL) throughout.
"""
import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (
    EPOCH3_4STEPS, CifarResNet, Clock, LATE, MethodBase, depth_of, kl_batchmean, sigmoid_rampup)


def gap(x):
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class Stage3Head(nn.Module):
    """A copied branch: stage 3 + GAP + FC (classic.md §2.4), named like the backbone's."""

    def __init__(self, backbone):
        super().__init__()
        self.layer3 = copy.deepcopy(backbone.layer3)
        self.fc = copy.deepcopy(backbone.fc)


# --- KDCL (classic.md §9) ----------------------------------------------------------------------


class KDCL(MethodBase):
    """m students, student i on view i. Teacher z_t from the students' logits (no gradient):
    minlogit: z_t,c = min_i (z_i,c - z_i,y); naive: per sample the student of least CE;
    linear: sum_i alpha_i z_i, alpha on the simplex minimising the batch CE, found by
    exponentiated gradient from the uniform point (alpha <- alpha * exp(-lr grad), normalised);
    mean: the mean of the logits; general: sum_i w_i z_i with w = C^-1 1 / (1^T C^-1 1),
    C_ij = mean_k (f_i(x_k) - e_y).(f_j(x_k) - e_y) over softmax outputs f, recomputed at each
    epoch start (uniform w until a C exists). §9 asks for a held-out split; okd documents that it
    takes C from the previous epoch's training batches (the students' own views), and this side
    does the same, so the case checks the rule, the solve and the epoch timing.
    L = sum_i CE(z_i, y) + lambda T^2 KL_T(z_t || z_i)."""

    def __init__(self, students=2, ensemble="minlogit", T=2.0, lam=1.0, linear_steps=10,
                 linear_lr=1.0, own_views=True):
        self.m, self.ensemble, self.T, self.lam = students, ensemble, T, lam
        self.own_views = own_views  # false: every student on the first view (okd's option)
        self.linear_steps, self.linear_lr = linear_steps, linear_lr
        self.w = np.full(students, 1.0 / students)  # general: weights of the current epoch
        self.cov, self.cov_n = np.zeros((students, students)), 0

    def on_epoch_start(self, clock):
        if self.ensemble == "general" and self.cov_n > 0:
            w = np.linalg.solve(self.cov / self.cov_n, np.ones(self.m))
            self.w = w / w.sum()
        self.cov, self.cov_n = np.zeros((self.m, self.m)), 0

    def build(self, arch, num_classes, **_):
        self.nets = [(f"net{i + 1}", CifarResNet(depth_of(arch), num_classes))
                     for i in range(self.m)]

    def num_views(self):
        return self.m if self.own_views else 1

    def teacher(self, z, y):
        z = [t.detach() for t in z]
        if self.ensemble == "mean":
            return torch.stack(z).mean(0)
        if self.ensemble == "minlogit":
            shifted = [t - t.gather(1, y[:, None]) for t in z]  # own target logit -> 0
            return torch.stack(shifted).min(0).values
        if self.ensemble == "naive":
            ce = torch.stack([F.cross_entropy(t, y, reduction="none") for t in z])  # [m, B]
            k = ce.argmin(0)  # per sample
            return torch.stack(z)[k, torch.arange(len(y))]
        if self.ensemble == "linear":
            zs = torch.stack(z)  # [m, B, C]
            alpha = torch.full((self.m,), 1.0 / self.m, dtype=zs.dtype)
            for _ in range(self.linear_steps):
                a = alpha.clone().requires_grad_(True)
                with torch.enable_grad():
                    ce = F.cross_entropy((a[:, None, None] * zs).sum(0), y)
                    (g,) = torch.autograd.grad(ce, a)
                alpha = alpha * torch.exp(-self.linear_lr * g)
                alpha = alpha / alpha.sum()
            return (alpha[:, None, None] * zs).sum(0)
        if self.ensemble == "general":
            return sum(float(self.w[i]) * z[i] for i in range(self.m))
        raise ValueError(self.ensemble)

    def forward_train(self, views, labels, clock):
        z = [net(views[i if self.own_views else 0]) for i, (_, net) in enumerate(self.nets)]
        zt = self.teacher(z, labels)
        terms, total = [], 0
        for i in range(self.m):
            ce = F.cross_entropy(z[i], labels)
            # The term kl_net<i> reports T^2 KL before its weight lambda (okd's convention for
            # the term's value; the loss carries lambda).
            kl = self.T**2 * kl_batchmean(zt, z[i], self.T)
            terms += [(f"ce_net{i + 1}", ce), (f"kl_net{i + 1}", kl)]
            total = total + ce + self.lam * kl
        if self.ensemble == "general":
            onehot = F.one_hot(labels, z[0].shape[1]).to(z[0].dtype)
            r = [(F.softmax(t.detach(), 1) - onehot).numpy() for t in z]  # [B, C] each
            self.cov += np.array([[np.sum(r[i] * r[j]) for j in range(self.m)]
                                  for i in range(self.m)])
            self.cov_n += len(labels)
            terms += [(f"w_net{i + 1}", torch.tensor(float(self.w[i]), dtype=torch.float64))
                      for i in range(self.m)]
        return total, terms


# --- PCL (classic.md §10) -----------------------------------------------------------------------


class PCLBranches(nn.Module):
    """Trunk + m peers (classic.md §2.4, split at the last stage): base is a whole backbone whose
    stage 3 + FC are peer 1; branch<k> (stage 3 + FC) is peer k+1."""

    def __init__(self, depth, num_classes, peers):
        super().__init__()
        self.base = CifarResNet(depth, num_classes)
        for k in range(1, peers):
            setattr(self, f"branch{k}", Stage3Head(self.base))
        self.peers = peers

    def peer(self, j):
        return self.base if j == 0 else getattr(self, f"branch{j}")

    def trunk(self, x):
        return self.base.run_stages(0, 2, x)


class PCLNet(nn.Module):
    def __init__(self, depth, num_classes, peers):
        super().__init__()
        self.net = PCLBranches(depth, num_classes, peers)
        self.ensemble_fc = nn.Linear(peers * 64, num_classes)

    def forward_views(self, views):
        """Peer j on trunk(view j), the trunk run once per view (BN statistics per view).
        Returns the peers' logits and the ensemble head's logits on concat(h_1..h_m)."""
        feats, logits = [], []
        for j in range(self.net.peers):
            p = self.net.peer(j)
            h = gap(p.layer3(self.net.trunk(views[j])))
            feats.append(h)
            logits.append(p.fc(h))
        return logits, self.ensemble_fc(torch.cat(feats, 1))


class PCL(MethodBase):
    """L = CE(z_e, y) + sum_j [ CE(z_j, y) + w(e) T^2 KL_T(sg(z_e) || z_j)
                                + w(e)/(m-1) sum_{l != j} T^2 KL_T(z'_l || z_j) ],
    z'_l the EMA model's peer l on view l (train mode, no gradient). After each step every EMA
    parameter: theta' <- a theta' + (1 - a) theta, a = min(1 - 1/(t+1), a_max), t the 0-based
    count of steps (§1.4, see after_update); ema_buffers=average also averages the BN running statistics."""

    def __init__(self, peers=3, T=3.0, rampup=80, ema_decay=0.999, ema_buffers="own"):
        self.m, self.T, self.rampup = peers, T, rampup
        self.ema_decay, self.ema_buffers = ema_decay, ema_buffers

    def build(self, arch, num_classes, **_):
        self.model = PCLNet(depth_of(arch), num_classes, self.m)
        self.ema = copy.deepcopy(self.model)  # replaced by det_init's "ema/..." values (expected)
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.nets = [("net", self.model), ("ema", self.ema)]
        self.ema_steps = 0

    def num_views(self):
        return self.m

    def forward_train(self, views, labels, clock):
        z, ze = self.model.forward_views(views)
        with torch.no_grad():
            zp, _ = self.ema.forward_views(views)
        w = sigmoid_rampup(clock.epoch, self.rampup)
        T2 = self.T**2
        ce_e = F.cross_entropy(ze, labels)
        terms = [(f"ce_peer{j + 1}", F.cross_entropy(z[j], labels)) for j in range(self.m)]
        # kl_ensemble / kl_mean_teachers: sums over the peers before the ramp-up weight w
        kl_e = sum(T2 * kl_batchmean(ze.detach(), z[j], self.T) for j in range(self.m))
        kl_mt = sum(T2 * kl_batchmean(zp[l], z[j], self.T)
                    for j in range(self.m) for l in range(self.m) if l != j) / (self.m - 1)
        total = ce_e + sum(t for _, t in terms) + w * kl_e + w * kl_mt
        terms += [("ce_ensemble", ce_e), ("kl_ensemble", kl_e), ("kl_mean_teachers", kl_mt),
                  ("w_rampup", torch.tensor(w, dtype=torch.float64))]
        return total, terms

    def after_update(self, clock):
        # t counts the optimizer steps this model has taken (0 for its first), which is §1.4's
        # "0-based global step" in a run from epoch 0, and a_0 = 0 makes "the EMA equal the model
        # after the first step" wherever the run starts. The cases start at later clocks with a
        # fresh model, so the count is not clock.global_step() here (okd keeps the same count,
        # optim/ema.h, checkpointed as ema.step).
        t = self.ema_steps
        self.ema_steps += 1
        a = min(1.0 - 1.0 / (t + 1), self.ema_decay)
        with torch.no_grad():
            for pe, p in zip(self.ema.parameters(), self.model.parameters()):
                pe.mul_(a).add_(p, alpha=1.0 - a)
            if self.ema_buffers == "average":
                for (n, be), b in zip(self.ema.named_buffers(), self.model.buffers()):
                    if be.is_floating_point():
                        be.mul_(a).add_(b, alpha=1.0 - a)


# --- CL-ILR (classic.md §7) ---------------------------------------------------------------------


class GradRescale(torch.autograd.Function):
    """R_g: identity forward; backward multiplies the incoming gradient (already summed over
    the g consumers of the shared tensor) by 1/g (classic.md §7, rescale operator)."""

    @staticmethod
    def forward(ctx, x, g):
        ctx.g = g
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.g, None


class Stage2Copy(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.layer2 = copy.deepcopy(backbone.layer2)


class CLILRNet(nn.Module):
    """base: a whole backbone; its stem + stage 1 (+ stage 2 in the simple layout) is the shared
    trunk and its stage 3 + FC are head 1. head<k> (stage 3 + FC) is head k+1.
    hierarchical (tree 1-2-4): base.layer2 feeds heads 1..H/2, mid1.layer2 heads H/2+1..H;
    rescale R_2 on the stage-1 output and R_{H/2} on each stage-2 output (trunk factor 1/H).
    simple: stem + stages 1-2 shared by the H heads, R_H on the stage-2 output."""

    def __init__(self, depth, num_classes, heads, layout, rescale):
        super().__init__()
        self.base = CifarResNet(depth, num_classes)
        self.H, self.layout, self.rescale = heads, layout, rescale
        if layout == "hierarchical":
            assert heads % 2 == 0
            self.mid1 = Stage2Copy(self.base)
        for k in range(1, heads):
            setattr(self, f"head{k}", Stage3Head(self.base))

    def R(self, x, g):
        return GradRescale.apply(x, float(g)) if self.rescale else x

    def head(self, h):
        return self.base if h == 0 else getattr(self, f"head{h}")

    def forward(self, x):
        f1 = self.base.run_stages(0, 1, x)
        if self.layout == "simple":
            f2 = self.R(self.base.layer2(f1), self.H)
            inputs = [f2] * self.H
        else:
            f1 = self.R(f1, 2)
            half = self.H // 2
            f2 = [self.R(self.base.layer2(f1), half), self.R(self.mid1.layer2(f1), half)]
            inputs = [f2[h // half] for h in range(self.H)]
        out = []
        for h in range(self.H):
            p = self.head(h)
            out.append(p.fc(gap(p.layer3(inputs[h]))))
        return out


class CLILR(MethodBase):
    """t_h = 1/(H-1) sum_{j != h} z_j (the other heads' logits).
    paper:  L = sum_h [ beta CE(z_h, y) + (1 - beta) T^2 KL_T(sg(t_h) || z_h) ], T = 2;
    okddip: L = sum_h CE(z_h, y) + w(e) sum_h T^2 KL_T(t_h || z_h), T = 3, t_h not detached.
    Terms: ce_head<h> = CE(z_h, y), kl = sum_h T^2 KL_T(t_h || z_h) before beta / w."""

    def __init__(self, variant="paper", heads=4, layout=None, T=None, beta=0.5, detach=None,
                 rampup=80, rescale=True):
        self.variant, self.H, self.beta, self.rampup, self.rescale = (variant, heads, beta,
                                                                       rampup, rescale)
        okd = variant == "okddip"
        self.layout = layout or ("simple" if okd else "hierarchical")
        self.T = T if T is not None else (3.0 if okd else 2.0)
        self.detach = detach if detach is not None else not okd

    def build(self, arch, num_classes, **_):
        self.net = CLILRNet(depth_of(arch), num_classes, self.H, self.layout, self.rescale)
        self.nets = [("net", self.net)]

    def forward_train(self, views, labels, clock):
        z = self.net(views[0])
        H, T2 = self.H, self.T**2
        total_z = sum(z)
        terms, ces, kl = [], [], 0
        for h in range(H):
            t = (total_z - z[h]) / (H - 1)
            if self.detach:
                t = t.detach()
            ces.append(F.cross_entropy(z[h], labels))
            terms.append((f"ce_head{h + 1}", ces[-1]))
            kl = kl + T2 * kl_batchmean(t, z[h], self.T)
        terms.append(("kl", kl))
        if self.variant == "okddip":
            w = sigmoid_rampup(clock.epoch, self.rampup)
            terms.append(("w_rampup", torch.tensor(w, dtype=torch.float64)))
            return sum(ces) + w * kl, terms
        return self.beta * sum(ces) + (1 - self.beta) * kl, terms


# Inside the 80-epoch ramp-up.
RAMP = [Clock(3, 300, 0, 10), Clock(3, 300, 1, 10)]
# The first two steps of a run (EMA a_0 = 0, a_1 = 0.5; ramp-up w(0)).
FIRST = [Clock(0, 300, 0, 10), Clock(0, 300, 1, 10)]

CASES = [
    ("kdcl", "kdcl", KDCL, LATE, {}),
    ("kdcl_naive_t3_nesterov", "kdcl:ensemble=naive,T=3", lambda: KDCL(ensemble="naive", T=3.0),
     LATE, {"nesterov": True}),
    ("kdcl_linear_m3_lambda0.5", "kdcl:students=3,ensemble=linear,lambda=0.5",
     lambda: KDCL(students=3, ensemble="linear", lam=0.5), LATE, {}),
    ("kdcl_mean", "kdcl:ensemble=mean", lambda: KDCL(ensemble="mean"), LATE, {}),
    # General: uniform weights in the first epoch, then C^-1 1 normalised from that epoch's
    # batches (two steps of epoch 3 feed C; the steps of epoch 4 use it), three students.
    ("kdcl_general_m3", "kdcl:students=3,ensemble=general", lambda: KDCL(students=3,
     ensemble="general"), [Clock(3, 300, 8, 10), Clock(3, 300, 9, 10), Clock(4, 300, 0, 10),
                           Clock(4, 300, 1, 10)], {}),
    ("kdcl_shared_view_linear_steps3", "kdcl:own_views=false,ensemble=linear,linear_steps=3,"
     "linear_lr=0.5", lambda: KDCL(own_views=False, ensemble="linear", linear_steps=3,
                                    linear_lr=0.5), LATE, {}),
    ("pcl", "pcl", PCL, LATE, {}),
    ("pcl_ramp", "pcl", PCL, RAMP, {}),
    ("pcl_first_steps", "pcl", PCL, FIRST, {}),
    # a_max = 0.3 < a_1 = 0.5, so the cap acts within two steps (a_0 = 0, a_1 = 0.3).
    ("pcl_m2_t2_ema_average_nesterov", "pcl:peers=2,T=2,ema_decay=0.3,ema_buffers=average",
     lambda: PCL(peers=2, T=2.0, ema_decay=0.3, ema_buffers="average"), RAMP,
     {"nesterov": True}),
    ("cl_ilr", "cl-ilr", CLILR, LATE, {}),
    ("cl_ilr_okddip", "cl-ilr:variant=okddip", lambda: CLILR(variant="okddip"), LATE, {}),
    ("cl_ilr_okddip_ramp", "cl-ilr:variant=okddip", lambda: CLILR(variant="okddip"), RAMP, {}),
    ("cl_ilr_simple_t3_beta0.3_nesterov", "cl-ilr:layout=simple,T=3,beta=0.3",
     lambda: CLILR(layout="simple", T=3.0, beta=0.3), LATE, {"nesterov": True}),
    ("cl_ilr_okddip_h3_norescale_detach",
     "cl-ilr:variant=okddip,heads=3,rescale=false,detach=true,rampup_epochs=40",
     lambda: CLILR(variant="okddip", heads=3, rescale=False, detach=True, rampup=40), RAMP, {}),
    ("cl_ilr_undetached_hier", "cl-ilr:detach=false", lambda: CLILR(detach=False), LATE, {}),
    # Four steps of one epoch: steps 3 and 4 are replays of a captured step on a device.
    ("kdcl_linear_4steps", "kdcl:ensemble=linear", lambda: KDCL(ensemble="linear"), EPOCH3_4STEPS, {}),
    ("pcl_4steps", "pcl", PCL, EPOCH3_4STEPS, {}),
    ("pcl_rampup40", "pcl:rampup_epochs=40", lambda: PCL(rampup=40), RAMP, {}),
    ("cl_ilr_4steps", "cl-ilr", CLILR, EPOCH3_4STEPS, {}),
]
