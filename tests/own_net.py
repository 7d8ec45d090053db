"""A network that is not the digits CNN, as a user would write it in their own file (the tests
name it ``tests/own_net.py:Net``): an expansion layer (8 -> 32), a residual block written as an
``add`` in the forward, a reduction (32 -> 16) whose batch norm cannot be folded (the layer's
output is used twice), three engine configurations."""

import torch
import torch.nn.functional as F
from torch import nn
from bfly.sw.butterfly import BFTConv2d


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.expand = BFTConv2d(8, 32, k=2)
        self.expand_bn = nn.BatchNorm2d(32)
        self.dw = nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32, bias=False)
        self.dw_bn = nn.BatchNorm2d(32)
        self.mix = BFTConv2d(32, 32, k=2)
        self.mix_bn = nn.BatchNorm2d(32)
        self.reduce = BFTConv2d(32, 16, k=4, bias=True)
        self.reduce_bn = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.expand_bn(self.expand(x)))
        x = torch.relu(self.dw_bn(self.dw(x)))
        x = F.relu(self.mix_bn(self.mix(x) + x))
        y = self.reduce(x)
        x = self.reduce_bn(y) + y
        return self.head(torch.relu(x).mean(dim=(2, 3)))


class Shared(nn.Module):
    """Two layers of one configuration (one engine), one of them called twice, and a batch norm
    without affine parameters."""

    def __init__(self):
        super().__init__()
        self.a = BFTConv2d(8, 8, k=2)
        self.b = BFTConv2d(8, 8, k=2)
        self.bn = nn.BatchNorm2d(8, affine=False)

    def forward(self, x):
        x = torch.relu(self.bn(self.a(x)))
        return self.b(torch.relu(self.b(x)))
