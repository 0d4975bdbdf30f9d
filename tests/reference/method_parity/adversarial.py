"""AFD and AMLN, written from the specification for method parity.

- AFD: classic.md §11. K networks, network k learns from its peer k' = k-1 (mod K):
  L_logit,k = CE(z_k, y) + lambda_kl T^2 KL_T(sg(z_k') || z_k);
  D_k (conv3x3 s2 -> BN -> LeakyReLU(0.2) -> conv3x3 s2 -> BN -> LeakyReLU(0.2) -> GAP -> FC ->
  sigmoid) on the last feature map F_k (the output of stage 3) learns peer = real, own = fake in
  the least-squares GAN form, L_D,k = mean[(D_k(sg(F_k')) - 1)^2] + mean[D_k(sg(F_k))^2];
  the generator loss is L_G,k = mean[(D_k(F_k) - 1)^2] with D_k frozen.
  One iteration = three updates: (1) SGD step of all networks on sum_k L_logit,k; (2) the
  features recomputed, SGD step of all networks on sum_k lambda_adv L_G,k (+ the optional L1
  alignment lambda_l1 mean|F_k - sg(F_k')|); (3) Adam step of all discriminators on sum_k L_D,k
  (lr d_lr, betas (d_beta1, 0.999), no weight decay; with d_lr_schedule the lr is
  d_lr * clock.lr_factor).
- AMLN: classic.md §12 (an approximation reconstructed from the abstract): the same with one
  discriminator per stage b = 1..3 on A_k^b(F_k^b), where the adaptation module A_k^b maps stage
  b's output to stage 3's shape (a chain of conv3x3 stride 2 -> BN -> ReLU: two for b = 1, one for
  b = 2, the identity for b = 3); the generator and L1 terms are summed over the blocks; T = 1.
  The AFD step ordering applies (§12 "The AFD step ordering applies").
with §1.1 (KD term, batchmean KL).

Logged terms follow okd's names: ce_netk, kl_netk (T^2 KL, before its weight lambda_kl),
g_adv (the weighted step-2 total, L1 included) and d_lsgan (sum_k L_D,k).
Readings taken where the specification is silent: the discriminators of step (3) see the
features computed in step (2) (before step 2's SGD update), detached; D runs in train mode in
step (2) as well (its BN running statistics move, its parameters do not); D's two forwards are
separate BN batches, real first (see REAL_FIRST).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import CifarResNet, Clock, LATE, MethodBase, depth_of, kl_batchmean


class Discriminator(nn.Module):
    """classic.md §11 "Discriminator": c -> c/2 -> c/4 with stride-2 3x3 convs (no bias), BN,
    LeakyReLU(0.2), GAP, FC(c/4 -> 1), sigmoid."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c // 2, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c // 2)
        self.conv2 = nn.Conv2d(c // 2, c // 4, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c // 4)
        self.fc = nn.Linear(c // 4, 1)

    def forward(self, x):
        x = F.leaky_relu(self.bn1(self.conv1(x)), 0.2)
        x = F.leaky_relu(self.bn2(self.conv2(x)), 0.2)
        return torch.sigmoid(self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


def adapter(cin, cout, n_stride2):
    """A_k^b (classic.md §12): n_stride2 x (conv3x3 stride 2, no bias -> BN -> ReLU)."""
    layers = []
    for i in range(n_stride2):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, 2, 1, bias=False),
                   nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


class Adversarial(MethodBase):
    """AFD (blocks = [3]) or AMLN (blocks = [1, 2, 3])."""

    def __init__(self, blocks=(3,), peers=2, T=3.0, lambda_kl=1.0, lambda_adv=1.0,
                 lambda_l1=0.0, d_lr=2e-4, d_beta1=0.5, d_lr_schedule=False):
        self.blocks, self.K, self.T = list(blocks), peers, T
        self.lambda_kl, self.lambda_adv, self.lambda_l1 = lambda_kl, lambda_adv, lambda_l1
        self.d_lr, self.d_beta1, self.d_lr_schedule = d_lr, d_beta1, d_lr_schedule
        self.d_opt = None

    def build(self, arch, num_classes, **_):
        self.peers = [CifarResNet(depth_of(arch), num_classes) for _ in range(self.K)]
        widths = CifarResNet.widths
        c = widths[-1]
        self.disc = nn.ModuleDict({f"net{k + 1}_block{b}": Discriminator(c)
                                   for k in range(self.K) for b in self.blocks})
        self.adapt = nn.ModuleDict({f"net{k + 1}_block{b}": adapter(widths[b - 1], c, 3 - b)
                                    for k in range(self.K) for b in self.blocks if b < 3})
        self.nets = [(f"net{k + 1}", n) for k, n in enumerate(self.peers)]
        self.nets.append(("discriminators", self.disc))
        if len(self.adapt):
            self.nets.append(("adapters", self.adapt))

    def param_groups(self):
        # The networks (and adapters) under SGD; the discriminators have their own Adam.
        params = [p for n in self.peers for p in n.parameters()] + list(self.adapt.parameters())
        return [{"params": params}]

    def peer_of(self, k):
        return (k - 1) % self.K

    def features(self):
        """Per network, per block b: A_k^b(F_k^b) (F_k^3 itself for b = 3), and the logits."""
        feats, logits = [], []
        for k, net in enumerate(self.peers):
            taps = net.forward_taps(self.x)  # stem, layer1, layer2, layer3, head
            feats.append({b: (self.adapt[f"net{k + 1}_block{b}"](taps[b]) if b < 3 else taps[b])
                          for b in self.blocks})
            logits.append(taps[4])
        return feats, logits

    def forward_train(self, views, labels, clock):
        self.x, self.labels = views[0], labels
        z = [net(self.x) for net in self.peers]
        terms, total = [], 0
        for k in range(self.K):
            ce = F.cross_entropy(z[k], labels)
            # the term is logged before its weight lambda_kl (okd's logging convention)
            kl = self.T**2 * kl_batchmean(z[self.peer_of(k)].detach(), z[k], self.T)
            terms += [(f"ce_net{k + 1}", ce), (f"kl_net{k + 1}", kl)]
            total = total + ce + self.lambda_kl * kl
        return total, terms

    def update(self, loss, terms, opt, clock):
        if self.d_opt is None:
            self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=self.d_lr,
                                          betas=(self.d_beta1, 0.999), eps=1e-8, weight_decay=0)
        # (1) the logit losses
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # (2) features recomputed with the new weights; the generators fool frozen discriminators
        feats = self.features()[0]
        g_total = 0
        for k in range(self.K):
            kp = self.peer_of(k)
            g = sum(((self.disc[f"net{k + 1}_block{b}"](feats[k][b]) - 1) ** 2).mean()
                    for b in self.blocks)
            g_total = g_total + self.lambda_adv * g
            if self.lambda_l1 != 0:
                l1 = sum((feats[k][b] - feats[kp][b].detach()).abs().mean() for b in self.blocks)
                g_total = g_total + self.lambda_l1 * l1
        terms.append(("g_adv", g_total.detach()))  # okd logs the weighted step-2 total
        opt.zero_grad(set_to_none=True)
        g_total.backward()
        opt.step()  # only the networks' (and adapters') parameters: D is not in opt
        # (3) the discriminators on the step-2 features, detached: peer real, own fake
        self.d_opt.zero_grad(set_to_none=True)
        for group in self.d_opt.param_groups:
            group["lr"] = self.d_lr * (clock.lr_factor if self.d_lr_schedule else 1.0)
        d_total = 0
        for k in range(self.K):
            kp = self.peer_of(k)
            d = 0
            for b in self.blocks:
                D = self.disc[f"net{k + 1}_block{b}"]
                # Two separate D forwards (two BN batches; §11 "Pitfalls" allows it). Their
                # order changes only D's BN running statistics; REAL_FIRST is the order of
                # §11's formula (and of okd's source text, see the module's end).
                if REAL_FIRST:
                    real = D(feats[kp][b].detach())
                    fake = D(feats[k][b].detach())
                else:
                    fake = D(feats[k][b].detach())
                    real = D(feats[kp][b].detach())
                d = d + ((real - 1) ** 2).mean() + (fake ** 2).mean()
            d_total = d_total + d
        terms.append(("d_lsgan", d_total.detach()))
        d_total.backward()
        self.d_opt.step()


# The order of the discriminator's two forwards in step (3): real (the peer's features) first,
# as L_D,k is written in classic.md §11. These cases found that okd's step_discriminators passed
# both forwards as the arguments of one call, whose evaluation order C++ leaves unspecified (GCC
# ran the fake first); okd sequences them, real first, since 34027c2.
REAL_FIRST = True

# LATE (common.py, epoch 100 of 300): nothing in AFD/AMLN depends on the epoch.
# Three steps after the first lr decay: lr_factor 0.1 scales the discriminators' lr too with
# d_lr_schedule=true.
DECAYED = [Clock(160, 300, 0, 10, 0.1), Clock(160, 300, 1, 10, 0.1), Clock(160, 300, 2, 10, 0.1)]

CASES = [
    ("afd", "afd", Adversarial, LATE, {}),
    ("afd_k3_t2_adv05_nesterov", "afd:peers=3,T=2,lambda_adv=0.5,lambda_kl=2",
     lambda: Adversarial(peers=3, T=2.0, lambda_adv=0.5, lambda_kl=2.0), LATE,
     {"nesterov": True}),
    ("afd_l1_dsched", "afd:lambda_l1=0.7,d_lr_schedule=true,d_lr=1e-2,d_beta1=0.8",
     lambda: Adversarial(lambda_l1=0.7, d_lr_schedule=True, d_lr=1e-2, d_beta1=0.8), DECAYED,
     {}),
]

AMLN = (1, 2, 3)
CASES += [
    ("amln", "amln", lambda: Adversarial(blocks=AMLN, T=1.0), LATE, {}),
    ("amln_l1_t2_dsched_nesterov",
     "amln:lambda_l1=0.5,T=2,lambda_kl=0.5,lambda_adv=0.3,d_lr_schedule=true,d_lr=5e-3",
     lambda: Adversarial(blocks=AMLN, lambda_l1=0.5, T=2.0, lambda_kl=0.5, lambda_adv=0.3,
                         d_lr_schedule=True, d_lr=5e-3), DECAYED, {"nesterov": True}),
    ("amln_k3_beta1_09", "amln:peers=3,d_beta1=0.9,lambda_l1=1",
     lambda: Adversarial(blocks=AMLN, peers=3, T=1.0, d_beta1=0.9, lambda_l1=1.0), LATE, {}),
]
