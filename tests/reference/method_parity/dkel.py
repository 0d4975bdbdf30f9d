"""DKEL (Decoupled Knowledge with Ensemble Learning, PCL-style), written from the specification for
method parity: seeds.md §6 (architecture §6.3, losses and ramp-up §6.4, EMA teacher and its
initialisation §6.4, recipe §6.5) with the shared pieces of §1 (batchmean KD at T with the T^2
factor §1.2, the EMA of §1.6, per-view BN calls §1.8). Facts not in the text (where the detaches
sit, the order of the trunk calls, what the teacher initialisation trains) were checked against the
official code (shaoeric/Decoupled-Knowledge-with-Ensemble-Learning-for-Online-Distillation:
src/models/resnet.py, src/losses/loss_wrapper.py, src/losses/kd_loss.py, src/trainer.py,
src/utils/ema.py).

Networks, under okd's names: "net" = the student, one module holding
  net.base      a whole CIFAR ResNet: conv1/bn1/layer1/layer2 are the shared trunk, and
                layer3 + fc are peer 1's branch,
  net.branch1   (layer3, fc) = peer 2's branch, net.branch2 = peer 3's, ... (K peers),
  ensemble_fc   the peer-ensemble head FC(K*64 -> C) on concat(pooled features of peers 1..K);
and "ema" = the temporal-mean copy (same module; its ensemble head is averaged but never used).

One step (§6.4), views x_1..x_K, peer i on view i, the trunk called once per view (§1.8):
  z_i = branch_i(trunk(x_i)), z_en = ensemble_fc(concat(pool_1..pool_K)),
  m_i = the EMA model's peer i on view i (train mode: its BN batch statistics and running stats),
  PE_i    = KD_T(z_i <- sg(z_en))
  PMind_i = 1/(K-1) sum_{j != i} KD_T(z_i <- m_j)
  PMens_i = KD_T(z_i <- mean_{j != i} m_j)            (logit average of the other mean peers)
  PM_i    = w_e w_r PMens_i + (1 - w_e) w_r PMind_i
  L = CE(z_en, y) + sum_i [CE(z_i, y) + w_r PE_i + PM_i]
Terms: ce_ensemble, ce_peer<i>, pe = sum_i PE_i (before w_r), pm = sum_i PM_i (with w_r and w_e,
as the spec's PM_i), w_rampup, w_ensemble.

The EMA teacher: before the first training step, trained for teacher_init_iters + 1 mini-batches
(here: the first training batch, the only data a method sees) with plain SGD (lr = base lr /
teacher_init_lr_div, momentum 0, weight decay 5e-4) on the mean of its K peers' CE, then frozen.
After every student step t = 0, 1, ... (a counter of this run's steps, not reset per epoch):
alpha_t = min(1 - 1/(t+1), decay) (or decay from t = 0 with ema_keep_init),
theta_ema <- alpha_t theta_ema + (1 - alpha_t) theta for parameters only (BN buffers not averaged).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (
    CifarResNet, Clock, LATE, MethodBase, depth_of, make_layer, sigmoid_rampup)


def kd(student_logits, teacher_logits, T):
    """KD of §1.2 with reduction batchmean and a detached teacher:
    T^2 * (1/N) sum_{n,c} p_t (log p_t - log softmax(s/T)), p_t = softmax(sg(t)/T)."""
    p_log = F.log_softmax(teacher_logits.detach() / T, dim=1)
    q_log = F.log_softmax(student_logits / T, dim=1)
    return (p_log.exp() * (p_log - q_log)).sum(1).mean() * (T * T)


class Branch(nn.Module):
    """A peer branch other than the first: stage 3 (layer3) -> GAP -> fc."""

    def __init__(self, depth, num_classes):
        super().__init__()
        self.layer3 = make_layer(32, 64, (depth - 2) // 6, 2)
        self.fc = nn.Linear(64, num_classes)


class PeerNet(nn.Module):
    """net.base (trunk + peer 1), net.branch1.. (peers 2..K)."""

    def __init__(self, depth, num_classes, peers):
        super().__init__()
        self.base = CifarResNet(depth, num_classes)
        for k in range(1, peers):
            setattr(self, f"branch{k}", Branch(depth, num_classes))
        self.peers = peers

    def trunk(self, x):
        return self.base.run_stages(0, 2, x)  # stem, layer1, layer2

    def branch(self, i, f):
        """Peer i (0-based) on trunk features f: (logits, pooled features)."""
        b = self.base if i == 0 else getattr(self, f"branch{i}")
        pooled = torch.flatten(F.adaptive_avg_pool2d(b.layer3(f), 1), 1)
        return b.fc(pooled), pooled

    def forward(self, views):
        # The trunk once per view, all trunk calls first, then the branches (the official
        # forward: extract(x1), extract(x2), extract(x3), branch1, branch2, branch3); the order
        # of the BN calls fixes the running statistics.
        feats = [self.trunk(x) for x in views]
        outs = [self.branch(i, f) for i, f in enumerate(feats)]
        return [z for z, _ in outs], [p for _, p in outs]


class DKELModel(nn.Module):
    def __init__(self, depth, num_classes, peers):
        super().__init__()
        self.net = PeerNet(depth, num_classes, peers)
        self.ensemble_fc = nn.Linear(64 * peers, num_classes)

    def forward(self, views):
        """(peer logits z_1..z_K, ensemble logits z_en)."""
        z, pooled = self.net(views)
        return z, self.ensemble_fc(torch.cat(pooled, dim=1))


class DKEL(MethodBase):
    def __init__(self, peers=3, T=3.0, rampup="reference", rampup_lambda=None, rampup_epochs=80,
                 exp_coef=0.5, exp_cutoff=0.01, ema_decay=0.999, ema_keep_init=False,
                 teacher_init_iters=1, teacher_init_lr_div=100.0, teacher_init_wd=5e-4):
        self.K, self.T = peers, T
        self.rampup = rampup
        # rampup_lambda "auto": 0.1 for the reference formula (the published source), 1.0 for
        # the intended one (§6.4).
        self.lam = rampup_lambda if rampup_lambda is not None else (
            0.1 if rampup == "reference" else 1.0)
        self.L = rampup_epochs
        self.exp_coef, self.exp_cutoff = exp_coef, exp_cutoff
        self.decay, self.keep_init = ema_decay, ema_keep_init
        self.init_iters, self.init_lr_div, self.init_wd = (teacher_init_iters,
                                                           teacher_init_lr_div, teacher_init_wd)

    def build(self, arch, num_classes, lr, **_):
        depth = depth_of(arch)
        self.student = DKELModel(depth, num_classes, self.K)
        self.ema = DKELModel(depth, num_classes, self.K)
        # Both are overwritten by det_init (by name) after build, so the copies the official
        # code makes here (identical branch FCs, EMA = student) have no counterpart.
        self.nets = [("net", self.student), ("ema", self.ema)]
        self.base_lr = lr
        self.teacher_initialised = False
        self.ema_step = 0

    def param_groups(self):
        return [{"params": [p for p in self.student.parameters()]}]

    def num_views(self):
        return self.K

    # --- schedules (epoch-indexed, §6.4) ---

    def w_rampup(self, e):
        lam, L = self.lam, self.L
        if self.rampup == "reference":
            # [REF-QUIRK] the released formula divides by lambda where the ramp length belongs.
            return lam if e > L else lam * math.exp(-5.0 * (1.0 - e / lam) ** 2)
        return lam * sigmoid_rampup(e, L)  # intended (§1.5)

    def w_ensemble(self, e):
        w = math.exp(-self.exp_coef * e)
        return w if w >= self.exp_cutoff else 0.0  # "set to 0 when it is < 0.01"

    # --- the EMA teacher ---

    def init_teacher(self, views, labels):
        """§6.4 Initialisation: init+1 plain SGD steps (no momentum) on mean_k CE(m_k, y), in
        train mode; the ensemble head gets no gradient, so torch's SGD leaves it alone (no
        weight decay on it either). Then the teacher is frozen."""
        opt = torch.optim.SGD(self.ema.parameters(), lr=self.base_lr / self.init_lr_div,
                              momentum=0.0, weight_decay=self.init_wd)
        self.ema.train()
        for _ in range(self.init_iters + 1):
            opt.zero_grad(set_to_none=True)
            m, _ = self.ema.net(views)
            loss = sum(F.cross_entropy(mk, labels) for mk in m) / self.K
            loss.backward()
            opt.step()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.teacher_initialised = True

    def after_update(self, clock):
        # alpha_t = min(1 - 1/(t+1), decay), t counts this run's student steps from 0 (§1.6).
        t = self.ema_step
        alpha = self.decay if self.keep_init else min(1.0 - 1.0 / (t + 1), self.decay)
        with torch.no_grad():
            for pe, ps in zip(self.ema.parameters(), self.student.parameters()):
                pe.mul_(alpha).add_(ps, alpha=1.0 - alpha)
        self.ema_step += 1

    # --- the step ---

    def forward_train(self, views, labels, clock):
        if not self.teacher_initialised:
            self.init_teacher(views, labels)
        K, T = self.K, self.T
        z, z_en = self.student(views)
        with torch.no_grad():
            m, _ = self.ema.net(views)  # train mode: BN batch statistics, running stats move
        e = clock.epoch
        w_r, w_e = self.w_rampup(e), self.w_ensemble(e)

        ce_en = F.cross_entropy(z_en, labels)
        total = ce_en
        terms = [("ce_ensemble", ce_en)]
        pe_sum, pm_sum = 0, 0
        for i in range(K):
            others = [j for j in range(K) if j != i]
            ce = F.cross_entropy(z[i], labels)
            pe = kd(z[i], z_en, T)  # z_en detached inside kd
            pm_ind = sum(kd(z[i], m[j], T) for j in others) / (K - 1)
            pm = (1.0 - w_e) * w_r * pm_ind
            if w_e > 0:  # the official code skips PMens when w_e is 0
                pm_ens = kd(z[i], sum(m[j] for j in others) / (K - 1), T)
                pm = pm + w_e * w_r * pm_ens
            total = total + ce + w_r * pe + pm
            terms.append((f"ce_peer{i + 1}", ce))
            pe_sum, pm_sum = pe_sum + pe, pm_sum + pm
        terms += [("pe", pe_sum), ("pm", pm_sum),
                  ("w_rampup", torch.tensor(w_r, dtype=torch.float64)),
                  ("w_ensemble", torch.tensor(w_e, dtype=torch.float64))]
        return total, terms


# At LATE (common.py, epoch 100 of 300): w_r = lambda = 0.1, w_e = 0.
# Epoch 0: the reference ramp gives w_r = 0.1 e^-5 = 6.7e-4, and w_e = 1 (ensemble teacher only).
EPOCH0 = [Clock(0, 300, 0, 10), Clock(0, 300, 1, 10)]
EPOCH1 = [Clock(1, 300, 0, 10), Clock(1, 300, 1, 10)]
# Across an epoch boundary inside the intended ramp: e = 1 (w_r 0.00763, w_e 0.607), then e = 2
# (w_r 0.00862, w_e 0.368), on_epoch_start at both.
BOUNDARY = [Clock(1, 300, 9, 10), Clock(2, 300, 0, 10)]
# Three steps at epoch 5 (for the options case: the EMA cap reached at t = 1).
EPOCH5 = [Clock(5, 300, 0, 10), Clock(5, 300, 1, 10), Clock(5, 300, 2, 10)]

# (case name, okd's --method value with options, factory of the implementation, clocks,
# run_case keyword arguments)
CASES = [
    ("dkel_late", "dkel", DKEL, LATE, {}),
    ("dkel_epoch0_nesterov", "dkel", DKEL, EPOCH0, {"nesterov": True}),
    ("dkel_intended_boundary", "dkel:rampup=intended", lambda: DKEL(rampup="intended"),
     BOUNDARY, {}),
    # The reference formula with lambda = 1 (what the released bytecode calls, §6.4): w_r = 1 at
    # e = 1 with w_e = 0.607, so both PM parts weigh in fully; Nesterov as in the recipe (§6.5).
    ("dkel_ref_lambda1_epoch1_nesterov", "dkel:rampup_lambda=1",
     lambda: DKEL(rampup_lambda=1.0), EPOCH1, {"nesterov": True}),
    # Another temperature, ramp (intended, lambda 2, 10 epochs: w_r = 2 e^-1.25 at e = 5), decay
    # coefficient (w_e = e^-0.5), a longer teacher initialisation with another lr, and an EMA
    # decay cap of 0.3 reached at t = 1 (alpha = 0, 0.3, 0.3).
    ("dkel_options",
     "dkel:T=2,rampup=intended,rampup_lambda=2,rampup_epochs=10,exp_coef=0.1,"
     "teacher_init_iters=2,teacher_init_lr_div=10,ema_decay=0.3",
     lambda: DKEL(T=2.0, rampup="intended", rampup_lambda=2.0, rampup_epochs=10, exp_coef=0.1,
                  teacher_init_iters=2, teacher_init_lr_div=10.0, ema_decay=0.3),
     EPOCH5, {}),
    # alpha = decay from t = 0 (the teacher's initialisation survives).
    ("dkel_keep_init", "dkel:ema_keep_init=true,ema_decay=0.9",
     lambda: DKEL(ema_keep_init=True, ema_decay=0.9), LATE, {}),
    # Four peers (the spec's 1/2 and "the other two" read as 1/(K-1) and the other K-1).
    ("dkel_peers4_epoch0", "dkel:peers=4", lambda: DKEL(peers=4), EPOCH0, {}),
    # Four steps of one epoch: steps 3 and 4 are replays of a captured step on a device.
    # (epoch 1 with lambda = 1: w_r = 1 and w_e = 0.607, so both PM parts count in the replays)
    ("dkel_4steps", "dkel:rampup_lambda=1", lambda: DKEL(rampup_lambda=1.0),
     [Clock(1, 300, k, 10) for k in range(4)], {}),
    # A cutoff above w_e = e^-0.5 = 0.607 at epoch 1: the decaying-ensemble weight is cut to 0
    # (lambda = 1 so that w_r = 1 and PM counts).
    ("dkel_exp_cutoff07_epoch1", "dkel:rampup_lambda=1,exp_cutoff=0.7",
     lambda: DKEL(rampup_lambda=1.0, exp_cutoff=0.7), EPOCH1, {}),
]
