"""BYOT, EED and Phuong & Lampert (classic.md §14.1, §14.2, §14.3): multi-exit self-distillation,
written from the specification for method parity.

One network `net` = the CIFAR ResNet (`base`, common.CifarResNet) plus an exit after every stage
but the last (`exit1` after stage 1, `exit2` after stage 2, ...); the deepest exit is the
backbone's own head (GAP -> fc). An exit is `convs` (a Sequential) -> GAP -> `fc`:
- bottleneck (BYOT, §14.1 "CIFAR ResNet, 3 stages"): conv1x1(C_s -> C_f/4, bias) -> BN -> ReLU ->
  conv kxk stride k (C_f/4 -> C_f/4, bias) -> BN -> ReLU -> conv1x1(C_f/4 -> C_f, bias) -> BN ->
  ReLU, C_f = the backbone's final width (64), k = the stage's resolution / the final resolution;
- conv_chain (EED, §14.2): conv3x3 stride 2 pad 1 (no bias) -> BN -> ReLU, doubling the channels,
  until the final width and resolution.
The exit feature f_i is the GAP output before the fc; the deepest's is the backbone's pooled
feature.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import EPOCH3_4STEPS, CifarResNet, Clock, LATE, MethodBase, depth_of, kl_batchmean


def bottleneck_exit(cin, width, k):
    q = width // 4
    return nn.Sequential(
        nn.Conv2d(cin, q, 1, bias=True), nn.BatchNorm2d(q), nn.ReLU(),
        nn.Conv2d(q, q, k, stride=k, bias=True), nn.BatchNorm2d(q), nn.ReLU(),
        nn.Conv2d(q, width, 1, bias=True), nn.BatchNorm2d(width), nn.ReLU())


def conv_chain_exit(cin, width):
    layers, c = [], cin
    while c < width:
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c),
                   nn.ReLU()]
        c *= 2
    return nn.Sequential(*layers)


class Exit(nn.Module):
    def __init__(self, convs, width, num_classes):
        super().__init__()
        self.convs = convs
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        f = torch.flatten(F.adaptive_avg_pool2d(self.convs(x), 1), 1)
        return self.fc(f), f


class MultiExitNet(nn.Module):
    """forward -> (logits list, feature list), shallowest first, the backbone's head last."""

    def __init__(self, depth, num_classes, image_size, exits):
        super().__init__()
        self.base = CifarResNet(depth, num_classes)
        widths = CifarResNet.widths
        final_res = image_size // 4  # stage 1 keeps the resolution, stages 2 and 3 halve it
        for s in range(len(widths) - 1):
            res = image_size // (2 ** s)
            if exits == "bottleneck":
                convs = bottleneck_exit(widths[s], widths[-1], res // final_res)
            else:
                assert exits == "conv_chain", exits
                convs = conv_chain_exit(widths[s], widths[-1])
            setattr(self, f"exit{s + 1}", Exit(convs, widths[-1], num_classes))
        self.num_exits = len(widths)

    def forward(self, x):
        b = self.base
        h = b.stem(x)
        logits, feats = [], []
        for s in range(1, 4):
            h = b.run_stage(s, h)
            if s < 3:
                z, f = getattr(self, f"exit{s}")(h)
            else:
                f = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
                z = b.fc(f)
            logits.append(z)
            feats.append(f)
        return logits, feats


class MultiExitMethod(MethodBase):
    def __init__(self, exits):
        self.exits = exits

    def build(self, arch, num_classes, image_size, **_):
        self.nets = [("net", MultiExitNet(depth_of(arch), num_classes, image_size, self.exits))]

    def ce_terms(self, z, labels):
        return [F.cross_entropy(zi, labels) for zi in z]


class BYOT(MultiExitMethod):
    """§14.1 (ICCV form): L = sum_i w_i CE(z_i, y)
                              + sum_{i<S} [ alpha T^2 KL_T(sg z_S || z_i) + lambda ||f_i - sg f_S||^2 ]
    with w_i = 1 - alpha, the deepest's w_S = 1 - alpha (deepest_ce=one_minus_alpha) or 1 (one);
    ||.||^2 the per-sample squared L2 distance averaged over the batch.
    Terms (okd's naming, the loss weights them): ce_exit<i> = CE(z_i, y), kd = sum_{i<S} T^2 KL_T,
    hint = sum_{i<S} ||f_i - sg f_S||^2; neither carries alpha nor lambda."""

    def __init__(self, exits="bottleneck", T=3.0, alpha=0.3, lam=0.03,
                 deepest_ce="one_minus_alpha"):
        super().__init__(exits)
        self.T, self.alpha, self.lam, self.deepest_ce = T, alpha, lam, deepest_ce

    def forward_train(self, views, labels, clock):
        z, f = self.nets[0][1](views[0])
        S = len(z)
        ces = self.ce_terms(z, labels)
        w_deep = 1.0 if self.deepest_ce == "one" else 1.0 - self.alpha
        ce_total = sum((1.0 - self.alpha) * c for c in ces[:-1]) + w_deep * ces[-1]
        zt, ft = z[-1].detach(), f[-1].detach()
        kd = sum(self.T**2 * kl_batchmean(zt, z[i], self.T) for i in range(S - 1))
        hint = sum(((f[i] - ft) ** 2).sum(1).mean() for i in range(S - 1))
        terms = [(f"ce_exit{i + 1}", c) for i, c in enumerate(ces)] + [("kd", kd), ("hint", hint)]
        return ce_total + self.alpha * kd + self.lam * hint, terms


class EED(MultiExitMethod):
    """§14.2: z_bar = sg(mean_i z_i), f_bar = sg(mean_i f_i) over all exits (the deepest included);
    L = sum_i CE(z_i, y) + sum_i out_i + sum_i mean[(f_i - f_bar)^2 * 1{f_i > 0 or f_bar > 0}]
    out_i = MSE(z_i, z_bar) (mean over batch and classes; output_loss=mse) or
            kl_weight T^2 KL_T(z_bar || z_i) (output_loss=kl).
    Terms: ce_exit<i>; mse_logits = sum_i MSE; kd = sum_i T^2 KL_T (without kl_weight, as BYOT's
    kd); feature_mse = the masked feature sum."""

    def __init__(self, exits="conv_chain", output_loss="mse", T=3.0, kl_weight=0.1,
                 feature_loss=True):
        super().__init__(exits)
        self.output_loss, self.T, self.kl_weight = output_loss, T, kl_weight
        self.feature_loss = feature_loss

    def forward_train(self, views, labels, clock):
        z, f = self.nets[0][1](views[0])
        ces = self.ce_terms(z, labels)
        z_bar = torch.stack(z).mean(0).detach()
        f_bar = torch.stack(f).mean(0).detach()
        terms = [(f"ce_exit{i + 1}", c) for i, c in enumerate(ces)]
        total = sum(ces)
        if self.output_loss == "mse":
            out = sum(F.mse_loss(zi, z_bar) for zi in z)
            terms.append(("mse_logits", out))
        else:
            kd = sum(self.T**2 * kl_batchmean(z_bar, zi, self.T) for zi in z)
            terms.append(("kd", kd))
            out = self.kl_weight * kd
        total = total + out
        if self.feature_loss:
            fm = sum((((fi - f_bar) ** 2) * ((fi > 0) | (f_bar > 0)).to(fi.dtype)).mean()
                     for fi in f)
            terms.append(("feature_mse", fm))
            total = total + fm
        return total, terms


class Phuong(MultiExitMethod):
    """§14.3: L = s [ (1 - C) sum_{i=1}^n CE(z_i, y) + C T^2 sum_{i<n} H(softmax(sg z_n / T),
    softmax(z_i / T)) ], H(p, q) = -mean_b sum_c p log q, s = 2 * 5 / n (scale=auto).
    T: 'anneal' starts at 1 and after every step whose batch-mean max_c softmax(z_n / T) (the
    step's teacher logits, at the step's T) exceeds the threshold, T <- factor * T (the official
    code's order: the loss uses the old T, the next step the new one); or a constant.
    Terms: ce_exit<i> unweighted, soft_ce = sum_{i<n} H (no C, T^2 or s), T = the step's T (the
    one its loss used). These cases found that okd logged its temperature tensor itself in
    float64 runs, which after_update anneals in place (the term showed the next step's T); okd
    logs a copy since f5a9a84."""

    def __init__(self, exits="conv_chain", T="anneal", anneal_factor=1.05, anneal_threshold=0.5,
                 C=0.5, scale="auto"):
        super().__init__(exits)
        self.anneal = T == "anneal"
        self.T = 1.0 if self.anneal else float(T)
        self.factor, self.threshold, self.C, self.scale = anneal_factor, anneal_threshold, C, scale

    def forward_train(self, views, labels, clock):
        z, _ = self.nets[0][1](views[0])
        n = len(z)
        s = 2.0 * 5.0 / n if self.scale == "auto" else float(self.scale)
        T = self.T
        ces = self.ce_terms(z, labels)
        p_t = F.softmax(z[-1].detach() / T, dim=1)
        soft = sum(-(p_t * F.log_softmax(z[i] / T, dim=1)).sum(1).mean() for i in range(n - 1))
        loss = s * ((1.0 - self.C) * sum(ces) + self.C * T**2 * soft)
        if self.anneal and float(p_t.max(1)[0].mean()) > self.threshold:
            self.T = T * self.factor
        terms = [(f"ce_exit{i + 1}", c) for i, c in enumerate(ces)]
        terms += [("soft_ce", soft), ("T", torch.tensor(T, dtype=torch.float64))]
        return loss, terms


# None of these methods depends on the clock (LATE, common.py): Phuong's temperature follows the
# teacher's confidence, not the epoch.
# Early in training, five steps on the same batch: the deepest exit's batch-mean max probability
# goes 0.18, 0.28, 0.53, ... so the default annealing (threshold 0.5) raises T after step 2 and
# again after step 3 (steps 3 and 4 run at T = 1.05 and 1.1025).
EARLY5 = [Clock(3, 300, k, 10) for k in range(5)]

CASES = [
    ("byot", "byot", BYOT, LATE, {}),
    # the later code's deepest CE weight 1, other T / alpha / lambda, EED's exit design, Nesterov
    ("byot_convchain_one_t4", "byot:exits=conv_chain,deepest_ce=one,T=4,alpha=0.5,lambda=0.1",
     lambda: BYOT(exits="conv_chain", deepest_ce="one", T=4.0, alpha=0.5, lam=0.1), LATE,
     {"nesterov": True}),
    ("eed", "eed", EED, LATE, {}),
    # the alternative output loss 0.1 -> 0.2, T = 2, without the feature loss, BYOT's exits, Nesterov
    ("eed_kl_t2_nofeat_bottleneck", "eed:output_loss=kl,T=2,kl_weight=0.2,feature_loss=false,"
     "exits=bottleneck", lambda: EED(exits="bottleneck", output_loss="kl", T=2.0, kl_weight=0.2,
                                     feature_loss=False), LATE, {"nesterov": True}),
    # the kl output loss with the feature loss and EED's own exits
    ("eed_kl", "eed:output_loss=kl", lambda: EED(output_loss="kl"), LATE, {}),
    ("phuong", "phuong", Phuong, LATE, {}),
    ("phuong_anneal_early", "phuong", Phuong, EARLY5, {}),
    # growth 1.2 over threshold 0.25 (T grows after step 1), C = 0.7, s = 1.5, Nesterov
    ("phuong_f12_th025_c07_s15", "phuong:anneal_factor=1.2,anneal_threshold=0.25,C=0.7,scale=1.5",
     lambda: Phuong(anneal_factor=1.2, anneal_threshold=0.25, C=0.7, scale=1.5),
     [Clock(3, 300, k, 10) for k in range(3)], {"nesterov": True}),
    # the constant-temperature variant (T = 4) on BYOT's exits
    ("phuong_t4_bottleneck", "phuong:T=4,exits=bottleneck",
     lambda: Phuong(T="4", exits="bottleneck"), LATE, {}),
    # Four steps of one epoch: steps 3 and 4 are replays of a captured step on a device.
    ("byot_4steps", "byot", BYOT, EPOCH3_4STEPS, {}),
    ("eed_4steps", "eed", EED, EPOCH3_4STEPS, {}),
]
