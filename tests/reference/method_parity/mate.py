"""MATE (reconstructed), written from the specification for method parity: seeds.md §4 (4.2
architecture, 4.3 losses and gradient routing) and §1 (1.2 the KD primitive, 1.5 the sigmoid
ramp-up, 1.7 the CIFAR ResNet with option-B shortcuts). No official code exists; every [ASSUMPTION]
of §4 is an okd option (train_cifar --help, "Options of --method mate"), and the cases switch them.

One network "net": the backbone (under "base."), two exit heads and the 3x3 teacher matrix Theta.
  exit 1 after stage 1: conv3x3(16->32, s2)+BN+ReLU -> conv3x3(32->64, s2)+BN+ReLU -> GAP -> FC
  exit 2 after stage 2: conv3x3(32->64, s2)+BN+ReLU -> GAP -> FC
  exit 3: the backbone's own GAP -> FC
  teacher k: t_k = sum_j softmax(Theta_k)_j z_j  (a mixture of exit LOGITS)
  L = sum_i CE(z_i, y) + sum_k CE(t_k, y)
      + lambda(e) sum_i [beta KD(z_i <- t_i) + (1-beta)/(K-1) sum_{k!=i} KD(z_i <- t_k)]
  KD(s <- t) = T^2 KL(softmax(t/T) || softmax(s/T)), batchmean; lambda(e) = sigmoid_rampup(e, L).
Gradient routing (§4.3): inside the teachers' CE the exit logits are detached (CE trains only
Theta); inside the KD terms the teacher is detached w.r.t. the exits but not w.r.t. Theta.
  theta_grad_from_kd=false: the KD terms' teachers are detached w.r.t. Theta too;
  teacher_grad_to_exits=true: the teachers (in their CE and in the KD terms) keep the exits'
  gradient. The two are independent: with both switched, the KD teachers keep the exits'
  gradient and lose Theta's (mate_grad_to_exits_nokdtheta found that okd detached the whole
  teacher there; fixed in f5a9a84). Theta is in its own parameter group, weight decay theta_wd (default 0).
Terms: ce_exit<i>, kd_exit<i> (exit i's weighted KD sum, before lambda), ce_teachers (the sum over
k), w_rampup (lambda); loss = sum ce_exit + ce_teachers + lambda sum kd_exit.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import EPOCH3_4STEPS, CifarResNet, Clock, LATE, MethodBase, depth_of, sigmoid_rampup


def kd(student_logits, teacher_logits, T):
    """T^2 KL_T(t || s), batchmean (seeds.md §1.2); gradient flows into both arguments as given."""
    p_log = F.log_softmax(teacher_logits / T, dim=1)
    q_log = F.log_softmax(student_logits / T, dim=1)
    return T * T * (p_log.exp() * (p_log - q_log)).sum(1).mean()


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class ExitHead(nn.Module):
    """convs (conv3x3 s2, BN, ReLU) x n, then GAP and FC; names convs.0/1/(3/4) and fc as okd's."""

    def __init__(self, widths, num_classes):
        super().__init__()
        layers = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += conv_bn_relu(cin, cout)
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.convs(x), 1), 1))


class MultiExitNet(nn.Module):
    def __init__(self, depth, num_classes, K=3):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(K, K))  # Θ = 0 in okd; det_init overwrites it
        self.base = CifarResNet(depth, num_classes)
        self.exit1 = ExitHead((16, 32, 64), num_classes)
        self.exit2 = ExitHead((32, 64), num_classes)

    def forward(self, x):
        """[z_1, z_2, z_3]: exit logits, shallowest first."""
        b = self.base
        f1 = b.run_stages(0, 1, x)   # stem + stage 1
        f2 = b.run_stage(2, f1)      # stage 2
        f3 = b.run_stage(3, f2)      # stage 3
        return [self.exit1(f1), self.exit2(f2), b.head(f3)]


class MATE(MethodBase):
    K = 3

    def __init__(self, T=3.0, beta=0.7, rampup_epochs=80, theta_grad_from_kd=True,
                 teacher_grad_to_exits=False, theta_wd=0.0):
        self.T, self.beta, self.rampup = T, beta, rampup_epochs
        self.theta_grad_from_kd = theta_grad_from_kd
        self.teacher_grad_to_exits = teacher_grad_to_exits
        self.theta_wd = theta_wd

    def build(self, arch, num_classes, **_):
        self.net = MultiExitNet(depth_of(arch), num_classes, self.K)
        self.nets = [("net", self.net)]

    def param_groups(self):
        rest = [p for n, p in self.net.named_parameters() if n != "theta"]
        return [{"params": rest}, {"params": [self.net.theta], "weight_decay": self.theta_wd}]

    def forward_train(self, views, labels, clock):
        K, T, beta = self.K, self.T, self.beta
        z = self.net(views[0])
        w = F.softmax(self.net.theta, dim=1)  # row k: teacher k's weights over the exits

        def teachers(weights, exits):
            # t_k = sum_j weights[k, j] z_j, for every k: [K, N, C]
            return torch.einsum("kj,jnc->knc", weights, torch.stack(exits))

        z_t = z if self.teacher_grad_to_exits else [zi.detach() for zi in z]
        t_ce = teachers(w, z_t)  # teachers of the CE: the exits detached (default)
        w_kd = w if self.theta_grad_from_kd else w.detach()
        t_kd = teachers(w_kd, z_t)  # teachers of the KD: Θ keeps its gradient (default)

        lam = sigmoid_rampup(clock.epoch, self.rampup)
        terms, ce_total, kd_total = [], 0, 0
        for i in range(K):
            ce = F.cross_entropy(z[i], labels)
            # β KD(z_i <- t_i) + (1-β)/(K-1) Σ_{k≠i} KD(z_i <- t_k)
            kdi = beta * kd(z[i], t_kd[i], T)
            kdi = kdi + (1.0 - beta) / (K - 1) * sum(kd(z[i], t_kd[k], T)
                                                     for k in range(K) if k != i)
            terms += [(f"ce_exit{i + 1}", ce), (f"kd_exit{i + 1}", kdi)]
            ce_total = ce_total + ce
            kd_total = kd_total + kdi
        ce_teachers = sum(F.cross_entropy(t_ce[k], labels) for k in range(K))
        terms += [("ce_teachers", ce_teachers), ("w_rampup", torch.tensor(lam, dtype=torch.float64))]
        return ce_total + ce_teachers + lam * kd_total, terms


# Inside the 80-epoch ramp-up, across an epoch boundary (λ changes between the steps).
RAMP = [Clock(3, 300, 9, 10), Clock(4, 300, 0, 10)]

CASES = [
    ("mate", "mate", MATE, LATE, {}),
    ("mate_rampup", "mate", MATE, RAMP, {}),
    # Other temperature and primary share, no KD gradient into Θ, Θ with weight decay, Nesterov.
    ("mate_t4_beta05_nokdtheta_wd",
     "mate:T=4,beta=0.5,theta_grad_from_kd=false,theta_wd=0.001",
     lambda: MATE(T=4.0, beta=0.5, theta_grad_from_kd=False, theta_wd=1e-3), LATE,
     {"nesterov": True}),
    # Teachers keep the exits' gradient (CE and KD), short ramp-up, inside it.
    ("mate_grad_to_exits_t2",
     "mate:T=2,beta=0.9,rampup_epochs=10,teacher_grad_to_exits=true",
     lambda: MATE(T=2.0, beta=0.9, rampup_epochs=10, teacher_grad_to_exits=True),
     [Clock(6, 300, 0, 10), Clock(6, 300, 1, 10)], {}),
    # The two routing options are independent (seeds.md §4.3; okd's --help: theta_grad_from_kd
    # detaches the KD teachers "w.r.t. Theta", teacher_grad_to_exits lets "the teachers' CE and KD
    # reach the exits' logits"): Θ gets no KD gradient, the exits do get it through the teachers.
    ("mate_grad_to_exits_nokdtheta",
     "mate:teacher_grad_to_exits=true,theta_grad_from_kd=false",
     lambda: MATE(teacher_grad_to_exits=True, theta_grad_from_kd=False), LATE, {}),
    # Four steps of one epoch: steps 3 and 4 are replays of a captured step on a device.
    ("mate_4steps", "mate", MATE, EPOCH3_4STEPS, {}),
]
