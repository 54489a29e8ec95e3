"""Projection head between the encoder and the loss."""

from __future__ import annotations

from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Linear."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        """Build the two layers."""
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, output_dim),
        )

    def forward(self, h: Tensor) -> Tensor:
        """(B, input_dim) -> (B, output_dim)."""
        return self.layers(h)
