#!/usr/bin/env python3
"""Reference files for apps/predict and the backbone zoo (tests/nn/test_predict_reference.cpp,
tests/nn/test_backbones_zoo.cpp).

The PyTorch modules below are transcribed from the code bases the zoo follows, with their exact
parameter names:
  resnet20 (option B)    the KD code bases' CIFAR ResNet (classic.md §2.1)
  wrn{d}_{k}             HobbitLong/RepDistiller models/wrn.py (the AT/CRD WRN, classic.md §2.2)
  wrn{d}_{k}_ffsd        SJLeo/FFSD models/wideresnet_cifar.py (seeds.md §1.7)
  vgg16_bn               DefangChen/OKDDip models/model_cifar/vgg.py
  densenet40_12,         DefangChen/OKDDip models/model_cifar/densenet.py (densenetd40k12,
  densenet_bc_100_12     densenetd100k12)
  resnet18/34[_cifar]    torchvision's ResNet (classic.md §2.3), CIFAR stem: conv3x3 s1, no maxpool

It writes into tests/data/predict/:
  zoo_state_dicts.txt    for each architecture and class count: the parameter count and every
                         state_dict key with its shape (what okd's names and shapes must equal)
  <net>_weights.safetensors, <net>_x.npy, <net>_logits.npy
                         for resnet20 (10 classes), wrn16_2 (100 classes) and densenet40_12
                         (100 classes): random weights with BN running statistics from three
                         train-mode passes (num_batches_tracked = 3), a batch of 4 images, and the
                         eval-mode logits.
The safetensors writer is written out by hand (8-byte little-endian header length, JSON header
with dtype, shape and data_offsets, then the raw little-endian data).

Run with Debian's python3-torch: /usr/bin/python3 tests/reference/make_predict_refs.py
"""
import math
import os
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from make_resnet_golden import BasicBlock  # option B, okd's names
from safetensors_io import save_safetensors

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "predict")


# ---- CIFAR ResNet, option B (conv1, bn1, layer{s}.{i}.conv1/bn1/conv2/bn2/shortcut.0/.1, fc) ----
class CifarResNet(nn.Module):
    def __init__(self, depth, num_classes):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, (w, st) in enumerate([(16, 1), (32, 2), (64, 2)]):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, w, st if b == 0 else 1))
                cin = w
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# ---- WRN, AT/CRD definition (RepDistiller models/wrn.py) ----
class WrnBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.equalInOut = in_planes == out_planes
        self.convShortcut = (not self.equalInOut) and nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False) or None

    def forward(self, x):
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equalInOut else x)))
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class NetworkBlock(nn.Module):
    def __init__(self, nb_layers, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WrnBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
                                     for i in range(nb_layers)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen_factor, num_classes):
        super().__init__()
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes)
        self.nChannels = ch[3]

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8).view(-1, self.nChannels)
        return self.fc(out)


# ---- WRN, FFSD definition (SJLeo/FFSD models/wideresnet_cifar.py, without the KD extras) ----
class FfsdWideBasic(nn.Module):
    def __init__(self, in_planes, planes, dropout_rate, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=dropout_rate)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=True))

    def forward(self, x):
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class FfsdWideResNet(nn.Module):
    def __init__(self, depth, k, dropout_rate, num_classes):
        super().__init__()
        self.in_planes = 16
        n = (depth - 4) // 6
        stages = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, stages[0], kernel_size=3, stride=1, padding=1, bias=True)
        self.layer1 = self._wide_layer(stages[1], n, dropout_rate, 1)
        self.layer2 = self._wide_layer(stages[2], n, dropout_rate, 2)
        self.layer3 = self._wide_layer(stages[3], n, dropout_rate, 2)
        self.bn1 = nn.BatchNorm2d(stages[3], momentum=0.9)
        self.relu1 = nn.ReLU(inplace=True)
        self.linear = nn.Linear(stages[3], num_classes)

    def _wide_layer(self, planes, num_blocks, dropout_rate, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(FfsdWideBasic(self.in_planes, planes, dropout_rate, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = self.relu1(self.bn1(out))
        return self.linear(F.avg_pool2d(out, 8).flatten(1))


# ---- VGG-16 with BN (OKDDip models/model_cifar/vgg.py) ----
class Vgg(nn.Module):
    def __init__(self, num_classes, dropout=0.0):
        super().__init__()
        self.inplances = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(True)
        self.layer1 = self._make_layers(128, 2)
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.layer2 = self._make_layers(256, 3)
        self.layer3 = self._make_layers(512, 3)
        self.layer4 = self._make_layers(512, 3)
        self.classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(p=dropout),
                                        nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(p=dropout),
                                        nn.Linear(512, num_classes))

    def _make_layers(self, width, num_layer):
        layers = []
        for _ in range(num_layer):
            layers += [nn.Conv2d(self.inplances, width, kernel_size=3, padding=1), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            self.inplances = width
        layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(self.relu(self.bn2(self.conv2(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(x.view(x.size(0), -1))


# ---- DenseNet (OKDDip models/model_cifar/densenet.py, small_inputs, not memory-efficient) ----
class DenseLayer(nn.Module):
    def __init__(self, num_input_features, growth_rate, bn_size):
        super().__init__()
        self.add_module("norm1", nn.BatchNorm2d(num_input_features))
        self.add_module("relu1", nn.ReLU(inplace=True))
        self.add_module("conv1", nn.Conv2d(num_input_features, bn_size * growth_rate, 1, 1, bias=False))
        self.add_module("norm2", nn.BatchNorm2d(bn_size * growth_rate))
        self.add_module("relu2", nn.ReLU(inplace=True))
        self.add_module("conv2", nn.Conv2d(bn_size * growth_rate, growth_rate, 3, 1, 1, bias=False))

    def forward(self, *prev_features):
        out = self.conv1(self.relu1(self.norm1(torch.cat(prev_features, 1))))
        return self.conv2(self.relu2(self.norm2(out)))


class Transition(nn.Sequential):
    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(num_input_features))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(num_input_features, num_output_features, 1, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseBlock(nn.Module):
    def __init__(self, num_layers, num_input_features, bn_size, growth_rate):
        super().__init__()
        for i in range(num_layers):
            self.add_module("denselayer%d" % (i + 1),
                            DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size))

    def forward(self, init_features):
        features = [init_features]
        for _, layer in self.named_children():
            features.append(layer(*features))
        return torch.cat(features, 1)


class DenseNet(nn.Module):
    def __init__(self, growth_rate, block_config, num_classes, compression=0.5, num_init_features=24, bn_size=4):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, kernel_size=3, stride=1, padding=1, bias=False))]))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module("denseblock%d" % (i + 1),
                                     DenseBlock(num_layers, num_features, bn_size, growth_rate))
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module("transition%d" % (i + 1),
                                         Transition(num_features, int(num_features * compression)))
                num_features = int(num_features * compression)
        self.features.add_module("norm_final", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

    def forward(self, x):
        features = self.features(x)
        x = F.relu(features)
        x = F.avg_pool2d(x, kernel_size=8).view(features.size(0), -1)
        return self.classifier(x)


# ---- torchvision ResNet-18/34 (names conv1, bn1, layer{1..4}.{i}.*, downsample.0/.1, fc) ----
class TvBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TvResNet(nn.Module):
    def __init__(self, layers, num_classes, cifar_stem):
        super().__init__()
        self.inplanes = 64
        if cifar_stem:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], 1)
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [TvBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [TvBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(arch, num_classes):
    if arch == "resnet20":
        return CifarResNet(20, num_classes)
    if arch.startswith("wrn"):
        parts = arch[3:].split("_")
        depth, k = int(parts[0]), int(parts[1])
        if arch.endswith("_ffsd"):
            return FfsdWideResNet(depth, k, 0.3 if (depth, k) == (28, 10) else 0.0, num_classes)
        return WideResNet(depth, k, num_classes)
    if arch == "vgg16_bn":
        return Vgg(num_classes)
    if arch == "densenet40_12":
        return DenseNet(12, [6, 6, 6], num_classes)
    if arch == "densenet_bc_100_12":
        return DenseNet(12, [16, 16, 16], num_classes)
    tv = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}
    base = arch.replace("_cifar", "")
    return TvResNet(tv[base], num_classes, arch.endswith("_cifar"))


# (architecture, classes) whose names, shapes and parameter counts the zoo test checks.
STATE_DICT_CASES = [
    ("resnet20", 10), ("wrn16_2", 10), ("wrn16_2", 100), ("wrn40_2", 100), ("wrn16_2_ffsd", 100),
    ("wrn40_2_ffsd", 100), ("vgg16_bn", 100), ("densenet40_12", 10), ("densenet40_12", 100),
    ("densenet_bc_100_12", 10), ("densenet_bc_100_12", 100), ("resnet18", 1000), ("resnet18_cifar", 100),
]
# Counts printed for docs/backbones.md but not written (large nets whose code the cases above
# already cover; building them in the C++ test costs tens of seconds of initialisation).
PRINT_ONLY_CASES = [("wrn28_10_ffsd", 100), ("vgg16_bn", 10), ("resnet34", 1000), ("resnet34_cifar", 100)]

# (architecture, classes) with weights, a batch and eval-mode logits.
LOGIT_CASES = [("resnet20", 10), ("wrn16_2", 100), ("densenet40_12", 100)]


def randomize(model):
    """Random weights everywhere, BN affine parameters away from 1/0, and BN running statistics
    from three train-mode passes on random batches (so they are non-trivial and num_batches_tracked
    is 3), then eval mode."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.1, 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.uniform_(m.bias, -bound, bound)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 32, 32) * 1.5 + 0.2)
    model.eval()


def write_state_dicts(path):
    lines = ["# state_dict keys, shapes and trainable parameter counts of the PyTorch definitions",
             "# written by tests/reference/make_predict_refs.py; format:",
             "#   arch <name> classes <C> params <trainable parameters> keys <count>",
             "#   <key> [<shape, comma separated; [] for a scalar>]"]
    for arch, classes in STATE_DICT_CASES:
        model = build(arch, classes)
        n = sum(p.numel() for p in model.parameters())
        sd = model.state_dict()
        lines.append(f"arch {arch} classes {classes} params {n} keys {len(sd)}")
        for k, v in sd.items():
            lines.append(f"{k} [{','.join(str(d) for d in v.shape)}]")
        print(f"{arch:20s} C={classes:5d} params {n:>12,d}  keys {len(sd)}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    for arch, classes in PRINT_ONLY_CASES:
        n = sum(p.numel() for p in build(arch, classes).parameters())
        print(f"{arch:20s} C={classes:5d} params {n:>12,d}  (printed only)")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    write_state_dicts(os.path.join(OUT, "zoo_state_dicts.txt"))
    for arch, classes in LOGIT_CASES:
        model = build(arch, classes)
        randomize(model)
        x = torch.randn(4, 3, 32, 32)
        with torch.no_grad():
            logits = model(x)
        save_safetensors(os.path.join(OUT, f"{arch}_weights.safetensors"), model.state_dict())
        np.save(os.path.join(OUT, f"{arch}_x.npy"), x.numpy())
        np.save(os.path.join(OUT, f"{arch}_logits.npy"), logits.numpy())
        print(f"{arch}: logits {tuple(logits.shape)}, |logits| max {logits.abs().max():.3f}, "
              f"std {logits.std():.3f}")


if __name__ == "__main__":
    main()
