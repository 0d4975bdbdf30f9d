"""The offline methods, for method parity: KD (classic.md §3) and AT (classic.md §4), each with a
frozen teacher in eval mode whose state is common.det_teacher's (the C++ test writes the same
state to a file that okd's method loads as --<method>.teacher).

KD:  L = ce_weight CE(z_s, y) + kd_weight T^2 KL_T(sg(z_t) || z_s)   (defaults 0.1, 0.9, T = 4)
AT:  a = vec(mean_c A^2) / max(||vec(mean_c A^2)||_2, 1e-12), per sample, at the output of every
     stage (post-ReLU; same resolutions here); at = sum_j mean_{b,hw} (a_S^j - a_T^j)^2;
     L = ce_weight CE + kd_weight T^2 KL_T + beta at   (defaults 1, 0, T = 4, beta = 1000)
Logged terms (okd's names): ce and kd unweighted (kd = T^2 KL; AT logs it only when kd_weight is
not 0), at before beta. The teacher is not
among networks(), so only the student's tensors are compared; the teacher's outputs enter through
every term.
"""
import torch
import torch.nn.functional as F

from common import (
    EPOCH3_4STEPS, CifarResNet, Clock, LATE, MethodBase, depth_of, det_teacher, kl_batchmean)


class Offline(MethodBase):
    def __init__(self, T=4.0, ce_weight=0.1, kd_weight=0.9, beta=0.0):
        self.T, self.ce_w, self.kd_w, self.beta = T, ce_weight, kd_weight, beta

    def build(self, arch, num_classes, teacher_arch, **_):
        self.nets = [("student", CifarResNet(depth_of(arch), num_classes))]
        self.teacher = CifarResNet(depth_of(teacher_arch), num_classes).to(torch.float64)
        det_teacher(self.teacher)
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    @staticmethod
    def attention(a):
        q = a.pow(2).mean(1).flatten(1)  # [B, H*W]
        return q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def forward_train(self, views, labels, clock):
        x = views[0]
        with torch.no_grad():
            t_taps = self.teacher.forward_taps(x)
        s_taps = self.nets[0][1].forward_taps(x)
        zs, zt = s_taps[-1], t_taps[-1]
        ce = F.cross_entropy(zs, labels)
        kd = self.T**2 * kl_batchmean(zt.detach(), zs, self.T)
        loss = self.ce_w * ce + self.kd_w * kd
        # okd's AT logs kd only when its weight is not zero (a logging convention)
        terms = [("ce", ce)] + ([("kd", kd)] if self.kd_w or not self.beta else [])
        if self.beta:
            at = sum(((self.attention(s) - self.attention(t.detach())) ** 2).mean()
                     for s, t in zip(s_taps[1:4], t_taps[1:4]))
            loss = loss + self.beta * at
            terms.append(("at", at))
        return loss, terms


CASES = [
    ("kd", "kd:teacher=@TEACHER@", Offline, LATE, {"teacher_arch": "resnet8"}),
    ("kd_resnet20_teacher_t2", "kd:teacher=@TEACHER@,teacher_arch=resnet20,T=2,ce_weight=0.3,"
     "kd_weight=0.7", lambda: Offline(T=2.0, ce_weight=0.3, kd_weight=0.7), LATE,
     {"teacher_arch": "resnet20", "nesterov": True}),
    ("at", "at:teacher=@TEACHER@", lambda: Offline(ce_weight=1.0, kd_weight=0.0, beta=1000.0),
     LATE, {"teacher_arch": "resnet8"}),
    ("at_kd_resnet20_teacher", "at:teacher=@TEACHER@,teacher_arch=resnet20,kd_weight=0.9,"
     "ce_weight=0.1,T=4,beta=500", lambda: Offline(ce_weight=0.1, kd_weight=0.9, beta=500.0),
     [Clock(3, 300, 4, 10), Clock(3, 300, 5, 10), Clock(3, 300, 6, 10)],
     {"teacher_arch": "resnet20"}),
    # Four steps of one epoch: steps 3 and 4 are replays of a captured step on a device.
    ("kd_4steps", "kd:teacher=@TEACHER@", Offline, EPOCH3_4STEPS, {"teacher_arch": "resnet8"}),
]
