#!/usr/bin/env python3
"""Golden files for the whole-model test (llm.c's test_gpt2 is the model of it).

Builds the CIFAR ResNet-20 with option-B shortcuts exactly as the KD code bases define it
(conv1, bn1, layer{1,2,3}.{i}.conv1/bn1/conv2/bn2, layer{s}.{i}.shortcut.0/.1, fc), with fixed
weights and a fixed batch, and writes under tests/data/golden/:
  resnet20_weights.safetensors   the initial weights (float32, PyTorch names)
  resnet20_x.npy, resnet20_y.npy a batch of 8 images [8,3,32,32] and labels
  resnet20_logits.npy            logits in train mode (batch statistics)
  resnet20_loss.npy              cross-entropy
  resnet20_grads.safetensors     the gradient of every parameter
  resnet20_bn_after.safetensors  running statistics after that one forward
  resnet20_sgd_losses.npy        the loss at each of 10 SGD steps (lr 0.02, momentum 0.9,
                                 weight decay 5e-4, nesterov) on the same batch, in float64
Run with Debian's python3-torch: /usr/bin/python3 tests/reference/make_resnet_golden.py
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import save_safetensors

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "golden")


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, n=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, (w, st) in enumerate([(16, 1), (32, 2), (64, 2)]):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, w, st if b == 0 else 1))
                cin = w
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    model = ResNet()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            # non-trivial affine parameters so their gradients and uses are exercised
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    x = torch.randn(8, 3, 32, 32)
    y = torch.randint(0, 10, (8,))
    params = dict(model.named_parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    save_safetensors(os.path.join(OUT, "resnet20_weights.safetensors"), state)
    np.save(os.path.join(OUT, "resnet20_x.npy"), x.numpy())
    np.save(os.path.join(OUT, "resnet20_y.npy"), y.numpy())

    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    np.save(os.path.join(OUT, "resnet20_logits.npy"), logits.detach().numpy())
    np.save(os.path.join(OUT, "resnet20_loss.npy"), loss.detach().numpy())
    save_safetensors(os.path.join(OUT, "resnet20_grads.safetensors"),
                     {k: p.grad for k, p in params.items()})
    save_safetensors(os.path.join(OUT, "resnet20_bn_after.safetensors"),
                     {k: v for k, v in model.state_dict().items() if "running" in k or "num_batches" in k})

    # The SGD trajectory runs in float64, so the reference carries no float32 rounding of its own,
    # with lr 0.02: at lr 0.1 on 8 images the loss fell 500x in 10 steps and float32 rounding
    # differences of 1e-7 (a different BLAS kernel) grew to 7e-2 by step 4 (chaotic, not wrong).
    model.load_state_dict(state)
    model = model.double()
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4, nesterov=True)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = F.cross_entropy(model(x.double()), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    np.save(os.path.join(OUT, "resnet20_sgd_losses.npy"), np.array(losses, dtype=np.float64))
    print("losses", losses)


if __name__ == "__main__":
    main()
