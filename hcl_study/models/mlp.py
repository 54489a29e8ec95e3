"""MLP encoder for vector data."""

from __future__ import annotations

from torch import Tensor, nn


class MLPEncoder(nn.Module):
    """`depth` hidden layers of `width` units, each Linear -> BatchNorm1d -> ReLU."""

    def __init__(self, input_dim: int, width: int, depth: int) -> None:
        """Build the layers; the output has `width` features."""
        super().__init__()
        layers: list[nn.Module] = []
        in_features = input_dim
        for _ in range(depth):
            layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            in_features = width
        self.layers = nn.Sequential(*layers)
        self.output_dim = width

    def forward(self, x: Tensor) -> Tensor:
        """(B, input_dim) -> (B, width)."""
        return self.layers(x)
