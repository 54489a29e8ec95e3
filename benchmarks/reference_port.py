"""Per-anchor loop port of the paper's reference hard-negative contrastive loss.

The baseline that `hcl_study.losses.contrastive_loss` is benchmarked against: for each
anchor and each of its positives (the anchor included), K negatives are drawn with numpy
from the hardness weights, e^{s/tau} is averaged over them, and the pair loss is
-log(pos / (pos + Q * mean)). Built from torch ops, so it can be back-propagated.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def reference_contrastive_loss(
    z: Tensor,
    labels: Tensor,
    *,
    loss: str,
    beta: float,
    tau: float,
    num_negatives: int = 256,
    negative_scale: float = 1.0,
    rng: np.random.Generator,
) -> Tensor:
    """Sampled HSCL / HUCL loss, one anchor and one positive at a time.

    Args:
        z: Features, shape (B, d).
        labels: Integer labels, shape (B,).
        loss: `scl` (negatives from other classes) or `ucl` (negatives from the batch).
        beta: Hardness; the weights are proportional to exp(beta * s_an).
        tau: Temperature.
        num_negatives: K, negatives drawn per pair with replacement.
        negative_scale: Q, the factor of the negative term.
        rng: Numpy generator for the draws.

    Returns:
        The scalar loss, the mean over (anchor, positive) pairs; a zero connected to `z`
        when no anchor has both.
    """
    class_of = labels.cpu().numpy()  # (B,)
    pair_losses = []
    for anchor in range(len(class_of)):
        similarities = z @ z[anchor]  # (B,)
        if loss == "scl":
            candidates = np.flatnonzero(class_of != class_of[anchor])
        else:
            candidates = np.arange(len(class_of))
        if candidates.size == 0:
            continue
        hardness = beta * similarities.detach()[candidates].double().cpu().numpy()
        weights = np.exp(hardness - hardness.max())
        weights /= weights.sum()
        for positive in np.flatnonzero(class_of == class_of[anchor]):
            drawn = rng.choice(candidates, size=num_negatives, p=weights)
            negative_term = torch.exp(similarities[drawn] / tau).mean()
            positive_term = torch.exp(similarities[positive] / tau)
            pair_losses.append(
                -torch.log(positive_term / (positive_term + negative_scale * negative_term))
            )
    if not pair_losses:
        return z.sum() * 0.0
    return torch.stack(pair_losses).mean()
