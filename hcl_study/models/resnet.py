"""torchvision ResNets with the CIFAR stem, as feature encoders."""

from __future__ import annotations

from typing import Literal

from torch import nn
from torchvision.models import ResNet, resnet18, resnet50

ResNetName = Literal["resnet18", "resnet50"]

ENCODER_DIMS: dict[str, int] = {"resnet18": 512, "resnet50": 2048}


def cifar_resnet(name: ResNetName) -> ResNet:
    """A randomly initialized ResNet with the CIFAR stem and no classifier.

    conv1 becomes a 3x3, stride-1, padding-1 convolution without bias, the stem max-pool
    and the final fc layer become identities, so the output is the pooled feature
    vector: (B, 512) for ResNet-18, (B, 2048) for ResNet-50.
    """
    network = resnet18(weights=None) if name == "resnet18" else resnet50(weights=None)
    network.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    network.maxpool = nn.Identity()
    network.fc = nn.Identity()
    return network
