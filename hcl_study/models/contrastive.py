"""Encoder, projection head and feature normalization as one model."""

from __future__ import annotations

from torch import Tensor, nn

from hcl_study.losses.normalization import FeatureNormalization


class ContrastiveModel(nn.Module):
    """z = normalization(head(encoder(x)))."""

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        normalization: FeatureNormalization,
        encoder_dim: int,
        feature_dim: int,
    ) -> None:
        """Assemble the parts.

        Args:
            encoder: Maps inputs to (B, encoder_dim) features.
            head: Maps (B, encoder_dim) to (B, feature_dim).
            normalization: Applied to the head output.
            encoder_dim: Width of the encoder output.
            feature_dim: Width of z.
        """
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.normalization = normalization
        self.encoder_dim = encoder_dim
        self.feature_dim = feature_dim

    def forward(self, x: Tensor) -> Tensor:
        """(B, *input_shape) -> z (B, feature_dim)."""
        return self.normalization(self.head(self.encoder(x)))
