"""Feature normalization applied after the projection head."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

NormalizationMode = Literal["none", "ball", "sphere"]
NORMALIZATION_MODES: tuple[str, ...] = get_args(NormalizationMode)
SPHERE_EPS = 1e-12  # smallest norm divided by in `sphere` mode, as in F.normalize


def normalize_features(z: Tensor, mode: NormalizationMode = "none") -> Tensor:
    """Project features onto the unit ball, the unit sphere, or leave them.

    Args:
        z: Features, shape (B, d).
        mode: `none` leaves z; `ball` divides by ||z|| only where ||z|| > 1 (the
            reference's unit-ball projection); `sphere` always divides by ||z||.

    Returns:
        Normalized features, shape (B, d).
    """
    if mode == "none":
        return z
    norms = z.norm(dim=1, keepdim=True)  # (B, 1)
    if mode == "ball":
        return z / torch.clamp(norms, min=1.0)
    if mode == "sphere":
        # F.normalize's floor: a zero feature stays zero, with a large but finite gradient.
        return z / torch.clamp(norms, min=max(SPHERE_EPS, torch.finfo(z.dtype).tiny))
    raise ValueError(f"normalization must be one of {NORMALIZATION_MODES}, got {mode!r}")


class FeatureNormalization(nn.Module):
    """`normalize_features` as a module, so a model ends in its normalization."""

    def __init__(self, mode: NormalizationMode = "none") -> None:
        super().__init__()
        if mode not in NORMALIZATION_MODES:
            raise ValueError(f"normalization must be one of {NORMALIZATION_MODES}, got {mode!r}")
        self.mode = mode

    def forward(self, z: Tensor) -> Tensor:
        return normalize_features(z, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
