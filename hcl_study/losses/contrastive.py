"""Supervised and unsupervised contrastive losses with hard-negative sampling.

Notation (Jiang et al., "Hard-Negative Sampling for Contrastive Learning"): features
`z` (B, d), labels `y` (B,), similarities s_ij = <z_i, z_j>, temperature tau > 0 and
hardness beta >= 0.

- Positives P(a): samples j with y_j = y_a; the anchor itself counts unless
  `self_positive=False`.
- Candidate negatives N(a): `scl` (and HSCL) takes the samples with y_j != y_a; `ucl`
  (and HUCL) takes every sample of the batch, its class included, since its negatives
  are drawn from the marginal; the anchor itself too unless `self_negative=False` (the
  paper's reference code keeps it; in the population loss a negative drawn independently
  of the anchor is never the anchor, and with a large beta on the sphere the weight
  w_aa ∝ exp(beta ||z_a||^2) takes most of the mass).
- Hardness weights w_an = exp(beta * s_an) / sum_{m in N(a)} exp(beta * s_am) over
  n in N(a), detached from the graph; beta = 0 gives uniform weights (plain SCL / UCL).
- Loss of a pair (a, p):
  -log(e^{s_ap/tau} / (e^{s_ap/tau} + Q * sum_{n in N(a)} w_an e^{s_an/tau})),
  with Q = `negative_scale`. The loss is the mean over all pairs (a, p in P(a)).

Estimators of the negative term: `reweight` takes the exact expectation under w;
`sample` draws `num_negatives` negatives per pair from w (with replacement) and averages,
as the reference implementation does.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

LossName = Literal["scl", "ucl"]
Estimator = Literal["reweight", "sample"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)
ESTIMATORS: tuple[str, ...] = get_args(Estimator)

# Most elements of a (pairs, K) index chunk or (pairs, B) weight chunk held at once by the
# `sample` estimator (64 MiB of int64).
_MAX_CHUNK_ELEMENTS = 1 << 23


def contrastive_loss(
    z: Tensor,
    labels: Tensor,
    *,
    loss: LossName = "scl",
    beta: float = 0.0,
    tau: float = 1.0,
    estimator: Estimator = "reweight",
    num_negatives: int = 256,
    negative_scale: float = 1.0,
    self_positive: bool = True,
    self_negative: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean contrastive loss over all (anchor, positive) pairs of a batch.

    Anchors without candidate negatives (an SCL batch of one class, a UCL batch of one
    sample without `self_negative`) or without positives (`self_positive=False` and a
    singleton class) contribute no pairs. With no pairs at all the result is a zero that
    is still connected to `z`, so that `backward()` works and gives zero gradients.

    Args:
        z: Features after normalization, shape (B, d); float32, float64 or bf16 (the
            logits are computed in float32 at least).
        labels: Integer labels, shape (B,).
        loss: `scl` (supervised negatives, y_n != y_a) or `ucl` (negatives from the
            whole batch).
        beta: Hardness, >= 0; 0 gives plain SCL / UCL.
        tau: Temperature, > 0.
        estimator: `reweight` (exact expectation under the hardness weights) or
            `sample` (`num_negatives` negatives drawn per pair, averaged).
        num_negatives: Negatives drawn per pair by the `sample` estimator.
        negative_scale: Q, the factor of the negative term.
        self_positive: Whether the anchor counts among its own positives.
        self_negative: Whether the anchor counts among its own candidate negatives
            (`ucl` only: SCL's negatives never include it).
        generator: Random generator of the `sample` estimator, on `z`'s device.

    Returns:
        The scalar loss, in float32 for bf16 / float16 input and in `z`'s dtype otherwise.
    """
    pair_losses, pair_mask = contrastive_pair_losses(
        z,
        labels,
        loss=loss,
        beta=beta,
        tau=tau,
        estimator=estimator,
        num_negatives=num_negatives,
        negative_scale=negative_scale,
        self_positive=self_positive,
        self_negative=self_negative,
        generator=generator,
    )
    return pair_losses.sum() / pair_mask.sum().clamp(min=1)


def contrastive_pair_losses(
    z: Tensor,
    labels: Tensor,
    *,
    loss: LossName = "scl",
    beta: float = 0.0,
    tau: float = 1.0,
    estimator: Estimator = "reweight",
    num_negatives: int = 256,
    negative_scale: float = 1.0,
    self_positive: bool = True,
    self_negative: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Loss of every (anchor, positive) pair, for per-anchor analysis.

    Takes the arguments of `contrastive_loss`.

    Returns:
        `(losses, mask)`, both (B, B): `losses[a, p]` is the loss of the pair (a, p) where
        `mask[a, p]` is true and 0 elsewhere.
    """
    _validate(z, labels, loss, beta, tau, estimator, num_negatives, negative_scale)
    compute_dtype = torch.promote_types(z.dtype, torch.float32)
    features = z.to(compute_dtype)  # (B, d)
    similarity = features @ features.T  # (B, B)
    same_class = labels[:, None] == labels[None, :]  # (B, B)
    not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)  # (B, B)
    pair_mask = same_class if self_positive else same_class & not_self  # (B, B)
    negative_mask = _candidate_negatives(labels, loss, self_negative)  # (B, B) or None
    if negative_mask is not None:
        has_negatives = negative_mask.any(dim=1, keepdim=True)  # (B, 1)
        pair_mask = pair_mask & has_negatives
        # Anchors without negatives get every sample as stand-in negatives: their pairs
        # are masked out, and the stand-ins keep the log-sum-exps and gradients finite.
        negative_mask = negative_mask | ~has_negatives

    log_weights = _log_hardness_weights(similarity.detach(), negative_mask, beta)  # (B, B)
    logits = similarity / tau  # (B, B)
    if estimator == "reweight":
        log_negative_term = torch.logsumexp(log_weights + logits, dim=1)  # (B,)
        # -log(e^{l_ap} / (e^{l_ap} + Q e^{L_a})) = softplus(log Q + L_a - l_ap)
        losses = F.softplus(math.log(negative_scale) + log_negative_term[:, None] - logits)
        return torch.where(pair_mask, losses, 0.0), pair_mask
    anchors, positives = pair_mask.nonzero(as_tuple=True)  # (P,), (P,)
    sampled = _sampled_pair_losses(
        logits, log_weights, anchors, positives, num_negatives, negative_scale, generator
    )  # (P,)
    losses = torch.zeros_like(logits).index_put((anchors, positives), sampled)
    return losses, pair_mask


def contrastive_loss_views(
    z1: Tensor,
    z2: Tensor,
    *,
    loss: LossName = "scl",
    beta: float = 0.0,
    tau: float = 1.0,
    estimator: Estimator = "reweight",
    num_negatives: int = 256,
    negative_scale: float = 1.0,
    self_negative: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Contrastive loss of two augmented views of each sample (SimCLR-style positives).

    The label of a view is the index of its sample, and the positive of an anchor is
    the other view of its sample (never the anchor itself). With `loss="scl"` the
    negatives are the 2(B - 1) views of the other samples, so `beta=0` and
    `negative_scale=2 * (B - 1)` give SimCLR's NT-Xent; with `loss="ucl"` they are all 2B
    views, as in UCL (the anchor itself left out with `self_negative=False`).

    Args:
        z1: Features of the first views, shape (B, d).
        z2: Features of the second views, shape (B, d).
        loss: `scl` or `ucl`, choosing the candidate negatives as above.
        beta: Hardness, >= 0.
        tau: Temperature, > 0.
        estimator: `reweight` or `sample`, as in `contrastive_loss`.
        num_negatives: Negatives drawn per pair by the `sample` estimator.
        negative_scale: Q, the factor of the negative term.
        self_negative: Whether a view counts among its own candidate negatives (`ucl`).
        generator: Random generator of the `sample` estimator.

    Returns:
        The scalar loss, the mean over the 2B (view, other view) pairs.
    """
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    sample_index = torch.arange(z1.shape[0], device=z1.device).repeat(2)  # (2B,)
    return contrastive_loss(
        torch.cat([z1, z2]),
        sample_index,
        loss=loss,
        beta=beta,
        tau=tau,
        estimator=estimator,
        num_negatives=num_negatives,
        negative_scale=negative_scale,
        self_positive=False,
        self_negative=self_negative,
        generator=generator,
    )


def hardness_weights(
    z: Tensor,
    labels: Tensor,
    *,
    loss: LossName = "scl",
    beta: float = 0.0,
    self_negative: bool = True,
) -> Tensor:
    """The hardness weights w_an that the loss puts on each anchor's candidate negatives.

    Args:
        z: Features after normalization, shape (B, d).
        labels: Integer labels, shape (B,).
        loss: `scl` or `ucl`, choosing the candidate negatives N(a) as in `contrastive_loss`.
        beta: Hardness, >= 0.
        self_negative: Whether the anchor counts among its own candidate negatives (`ucl`).

    Returns:
        Weights (B, B), detached, in float32 at least: row a sums to 1 over N(a) and is 0
        elsewhere; the row of an anchor without candidate negatives is all 0.
    """
    _validate_batch(z, labels, loss, beta)
    features = z.detach().to(torch.promote_types(z.dtype, torch.float32))  # (B, d)
    similarity = features @ features.T  # (B, B)
    negative_mask = _candidate_negatives(labels, loss, self_negative)  # (B, B) or None
    if negative_mask is None:
        return _log_hardness_weights(similarity, None, beta).exp()
    has_negatives = negative_mask.any(dim=1, keepdim=True)  # (B, 1)
    log_weights = _log_hardness_weights(similarity, negative_mask | ~has_negatives, beta)
    return torch.where(negative_mask, log_weights.exp(), 0.0)


def _candidate_negatives(labels: Tensor, loss: str, self_negative: bool) -> Tensor | None:
    """N(a) of every anchor as a (B, B) mask; None when every sample of the batch is one."""
    if loss == "scl":
        return labels[:, None] != labels[None, :]
    if not self_negative:
        return ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return None


def _log_hardness_weights(similarity: Tensor, negative_mask: Tensor | None, beta: float) -> Tensor:
    """Log of w_an, proportional to exp(beta * s_an) over N(a); -inf outside N(a).

    Args:
        similarity: Detached similarities, shape (B, B).
        negative_mask: Candidate negatives N(a) per row, at least one per row, (B, B);
            None when every sample is a candidate.
        beta: Hardness.

    Returns:
        Log-weights, shape (B, B), each row normalized over its negatives.
    """
    hardness = beta * similarity  # (B, B)
    if negative_mask is not None:
        hardness = hardness.masked_fill(~negative_mask, -math.inf)
    return torch.log_softmax(hardness, dim=1)


def _sampled_pair_losses(
    logits: Tensor,
    log_weights: Tensor,
    anchors: Tensor,
    positives: Tensor,
    num_negatives: int,
    negative_scale: float,
    generator: torch.Generator | None,
) -> Tensor:
    """Pair losses with the negative term averaged over negatives drawn from w.

    Pairs are processed in chunks of at most `_MAX_CHUNK_ELEMENTS` drawn indices or
    gathered weights.

    Args:
        logits: s / tau, shape (B, B).
        log_weights: Log hardness weights, shape (B, B).
        anchors: Anchor of each pair, shape (P,).
        positives: Positive of each pair, shape (P,).
        num_negatives: K, negatives drawn per pair (with replacement).
        negative_scale: Q.
        generator: Random generator for the draws.

    Returns:
        Loss of each pair, shape (P,).
    """
    weights = log_weights.exp()  # (B, B)
    if not torch.isfinite(weights).all():
        # Overflowing similarities (diverging features) give NaN weights, which `multinomial`
        # refuses; the loss is then NaN, as the `reweight` estimator's is, and not an error.
        return logits[anchors, positives] + math.nan
    chunk_size = max(1, _MAX_CHUNK_ELEMENTS // max(num_negatives, logits.shape[1]))
    log_negative_terms = []
    for chunk_anchors in anchors.split(chunk_size):  # (P_c,)
        negatives = torch.multinomial(
            weights[chunk_anchors], num_negatives, replacement=True, generator=generator
        )  # (P_c, K)
        negative_logits = logits[chunk_anchors[:, None], negatives]  # (P_c, K)
        log_negative_terms.append(torch.logsumexp(negative_logits, dim=1))  # (P_c,)
    log_scale = math.log(negative_scale / num_negatives)
    log_negative_term = torch.cat(log_negative_terms) + log_scale  # (P,)
    return F.softplus(log_negative_term - logits[anchors, positives])


def _validate(
    z: Tensor,
    labels: Tensor,
    loss: str,
    beta: float,
    tau: float,
    estimator: str,
    num_negatives: int,
    negative_scale: float,
) -> None:
    """Raise ValueError naming the first invalid argument and its allowed values."""
    _validate_batch(z, labels, loss, beta)
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    if not (math.isfinite(negative_scale) and negative_scale > 0):
        raise ValueError(f"negative_scale must be a finite number > 0, got {negative_scale!r}")
    if not isinstance(num_negatives, numbers.Integral) or num_negatives < 1:
        raise ValueError(f"num_negatives must be an integer >= 1, got {num_negatives!r}")


def _validate_batch(z: Tensor, labels: Tensor, loss: str, beta: float) -> None:
    """Raise ValueError naming the first invalid batch shape, loss name or hardness."""
    if z.ndim != 2:
        raise ValueError(f"z must have shape (B, d), got {tuple(z.shape)}")
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},), got {tuple(labels.shape)}")
    if loss not in LOSS_NAMES:
        raise ValueError(f"loss must be one of {LOSS_NAMES}, got {loss!r}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
