"""MCL-OKD (classic.md §13), written from the specification for method parity.

Architecture (§13 "Architecture", §2.4 "split after stage 1"): a shared stem + stage 1, then m
branches, each a fresh stage 2 + stage 3 + GAP + FC. Embedding head per branch:
Linear(64 -> 128) then L2 normalisation, on the branch's pooled 64-d feature (with gradient). One
memory bank per branch, N x 128 (N the training-set size), no gradient.

Loss (§13 "Contrastive loss", "DOT", "Total"):
    L = gamma * sum_i CE(z_i, y) + alpha * L_DOT + beta * L_MCL
    L_DOT = T^2 KL_T(sg(mean_i z_i) || z_m)                      (last branch only)
    L_MCL = sum over ordered pairs (i != j) of NCE(s^{i->j}),
            s^{i->j}_{b,k} = exp(<M_i[idx_{b,k}], v_{j,b}> / tau) / Z,  Z = sg(mean(s)) * N,
            idx_b = [n_b, neg_1 .. neg_K]  (same instance first, then K other-class samples),
    NCE(s) = -(1/B) sum_b [ log(s_b0 / (s_b0 + K/N + eps))
                            + sum_k log((K/N) / (s_bk + K/N + eps)) ],  eps = 1e-7.
Memory update after the scores (§13 step 5), no gradient:
    M_i[n_b] <- normalize(mu M_i[n_b] + (1 - mu) v_{i,b}),  mu = bank_momentum.

Facts checked in the official code (winycg/MCL-OKD, mcl/memory.py, mcl/criterion.py,
main_cifar_mcl_okd.py): the bank rows are detached and the embeddings are not; Z is the detached
mean of each score tensor times the bank's row count, recomputed for every tensor at every step;
the bank update uses the embeddings of the same forward, after all scores; the ensemble logits of
DOT are detached; the embedding input is the branch's pooled feature (before its FC).

Negatives: the parity training set is the batch itself (labels 0..7 of 10 classes), so with K = 7
every sample's other-class candidates are exactly the 7 other samples, drawn without replacement
(§13 "Sampling": with replacement only if needed). The NCE, Z and the bank update do not depend on
their order, so the negatives are taken in index order here; any other K would depend on the draw
and is refused. (The official code agrees: dataset/cifar100.py draws with
np.random.choice(cls_negative[target], k, replace=k > len(cls_negative[target])).)

When written, these cases failed against okd: its MclMethod::sample_indices drew every negative
independently, always with replacement (duplicate negatives even when K <= the candidates). Fed
okd's own draws instead (a diagnostic, not kept), this implementation agreed to 1.5e-14. okd draws
without replacement since 7158895 (ops::sample_distinct) and the cases pass.

okd's layout (build/tests/method_layout 'mcl:negatives=7'): "net" holds "net.base" (a whole CIFAR
ResNet: the shared stem + layer1, and layer2/layer3/fc as branch 1) and "net.branch1".. (layer2,
layer3, fc of branches 2..m); "embed" holds the heads "0".."m-1"; "memory" the banks
"bank0".."bank{m-1}". Terms: ce_branch1..m, mcl and dot, each before its weight.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import CifarResNet, Clock, LATE, MethodBase, depth_of, kl_batchmean, make_layer

NCE_EPS = 1e-7


def gap(x):
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class Branch(nn.Module):
    """A copied branch: stage 2 (split_stage 2 only) + stage 3 + GAP + FC, named like the
    backbone's."""

    def __init__(self, blocks, num_classes, split_stage):
        super().__init__()
        if split_stage == 2:
            self.layer2 = make_layer(16, 32, blocks, 2)
        self.layer3 = make_layer(32, 64, blocks, 2)
        self.fc = nn.Linear(64, num_classes)


class MclNet(nn.Module):
    """net.base (the shared stages before split_stage, and branch 1) and net.branch1.. (branches
    2..m, copies of stages split_stage..3 and the FC). split_stage 2: stem + layer1 shared (the
    default); 3: stem + layer1 + layer2 shared."""

    def __init__(self, depth, num_classes, branches, split_stage=2):
        super().__init__()
        self.base = CifarResNet(depth, num_classes)
        for k in range(1, branches):
            setattr(self, f"branch{k}", Branch(self.base.blocks, num_classes, split_stage))
        self.m, self.split = branches, split_stage

    def forward(self, x):
        """(logits [m x (B, C)], pooled features [m x (B, 64)])."""
        h = self.base.run_stages(0, self.split - 1, x)  # the shared stages
        logits, feats = [], []
        for k in range(self.m):
            br = self.base if k == 0 else getattr(self, f"branch{k}")
            f = gap(br.layer3(br.layer2(h) if self.split == 2 else h))
            feats.append(f)
            logits.append(br.fc(f))
        return logits, feats


class Memory(nn.Module):
    def __init__(self, branches, n, dim):
        super().__init__()
        s = (3.0 / dim) ** 0.5  # U(-s, s), s = 1/sqrt(dim/3); det_init overwrites it alike
        for i in range(branches):
            self.register_buffer(f"bank{i}", (torch.rand(n, dim) * 2 - 1) * s)

    def bank(self, i):
        return getattr(self, f"bank{i}")


def nce(s, K, N):
    """-(1/B) sum_b [log(P_pos/(P_pos + K/N + eps)) + sum_k log((K/N)/(P_neg,k + K/N + eps))]."""
    c = K / N
    pos = s[:, 0]
    neg = s[:, 1:]
    log_d1 = torch.log(pos / (pos + c + NCE_EPS))
    log_d0 = torch.log(c / (neg + c + NCE_EPS))
    return -(log_d1.sum() + log_d0.sum()) / s.shape[0]


class MCL(MethodBase):
    def __init__(self, branches=4, negatives=7, tau=0.1, bank_momentum=0.5, T=3.0, alpha=1.0,
                 beta=0.025, gamma=1.0, embed_dim=128, n_train=8, split_stage=2):
        self.split_stage = split_stage
        self.N = n_train  # N of the formulas: the training-set size = run_case's batch
        self.m, self.K, self.tau, self.mu = branches, negatives, tau, bank_momentum
        self.T, self.alpha, self.beta, self.gamma, self.dim = T, alpha, beta, gamma, embed_dim

    def build(self, arch, num_classes, **_):
        # The training set is the batch itself (run_case's batch of n_train images, labels
        # i % classes): the banks have one row per training sample.
        self.train_labels = torch.arange(self.N, dtype=torch.int64) % num_classes
        self.model = MclNet(depth_of(arch), num_classes, self.m, self.split_stage)
        self.embed = nn.ModuleList([nn.Linear(64, self.dim) for _ in range(self.m)])
        self.memory = Memory(self.m, self.N, self.dim)
        self.nets = [("net", self.model), ("embed", self.embed), ("memory", self.memory)]

    def negatives(self, indices):
        """idx [B, K+1]: the sample itself, then its K other-class training samples. Only the
        case K = (number of candidates) is deterministic (all of them, order irrelevant)."""
        rows = []
        for n in indices.tolist():
            cand = [c for c in range(self.N) if self.train_labels[c] != self.train_labels[n]]
            assert len(cand) == self.K, "only K = number of other-class samples is deterministic"
            rows.append([n] + cand)
        return torch.tensor(rows, dtype=torch.int64)

    def forward_train(self, views, labels, clock):
        B = views[0].shape[0]
        indices = torch.arange(B, dtype=torch.int64)  # dataset indices of the batch
        logits, feats = self.model(views[0])
        v = [F.normalize(self.embed[i](feats[i]), p=2, dim=1) for i in range(self.m)]
        idx = self.negatives(indices)

        # Contrastive scores, both directions of every unordered pair: bank i against the
        # embeddings of branch j, and bank j against branch i. Bank rows carry no gradient.
        l_mcl = 0
        for i in range(self.m):
            for j in range(i + 1, self.m):
                for a, b in ((i, j), (j, i)):
                    w = self.memory.bank(a)[idx.reshape(-1)].detach().reshape(B, self.K + 1, -1)
                    s = torch.exp(torch.bmm(w, v[b].unsqueeze(2)).squeeze(2) / self.tau)
                    Z = s.mean().detach() * self.N  # from the current tensor, no gradient
                    l_mcl = l_mcl + nce(s / Z, self.K, self.N)

        # Bank update, after every score: M_i[n_b] <- normalize(mu M_i[n_b] + (1 - mu) v_i,b).
        with torch.no_grad():
            for i in range(self.m):
                bank = self.memory.bank(i)
                row = self.mu * bank[indices] + (1.0 - self.mu) * v[i]
                bank[indices] = row / row.norm(dim=1, keepdim=True)

        ces = [F.cross_entropy(z, labels) for z in logits]
        teacher = (sum(logits) / self.m).detach()  # mean over all branches, the student included
        dot = self.T ** 2 * kl_batchmean(teacher, logits[-1], self.T)
        loss = self.gamma * sum(ces) + self.alpha * dot + self.beta * l_mcl
        terms = [(f"ce_branch{k + 1}", ces[k]) for k in range(self.m)]
        terms += [("mcl", l_mcl), ("dot", dot)]
        return loss, terms


# MCL has no ramp-up: the clock (LATE, common.py) changes nothing.
STEPS3 = [Clock(100, 300, 0, 10), Clock(100, 300, 1, 10), Clock(100, 300, 2, 10)]

CASES = [
    ("mcl", "mcl:negatives=7", lambda: MCL(negatives=7), LATE, {}),
    ("mcl_m3_tau02_mom03_t2_weights_nesterov",
     "mcl:negatives=7,branches=3,tau=0.2,bank_momentum=0.3,T=2,alpha=0.5,beta=0.1,gamma=0.7",
     lambda: MCL(negatives=7, branches=3, tau=0.2, bank_momentum=0.3, T=2.0, alpha=0.5,
                 beta=0.1, gamma=0.7), LATE, {"nesterov": True}),
    # Every bank row is written at step 1 and read (as positives and negatives) at steps 2 and
    # 3; beta = 0.5 so that the contrastive term weighs on the parameters' changes.
    ("mcl_steps3_beta05", "mcl:negatives=7,beta=0.5", lambda: MCL(negatives=7, beta=0.5),
     STEPS3, {"lr": 0.2}),
    # A smaller embedding (the heads' output and the banks' width).
    ("mcl_embed16", "mcl:negatives=7,embed_dim=16", lambda: MCL(negatives=7, embed_dim=16), LATE,
     {}),
    # Branches that share stage 2 too (split after stage 2), three of them.
    ("mcl_split3_m3", "mcl:negatives=7,split_stage=3,branches=3",
     lambda: MCL(negatives=7, split_stage=3, branches=3), LATE, {}),
]
