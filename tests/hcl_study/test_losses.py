"""Contrastive losses against naive per-anchor loops written from the definition."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

import hcl_study.losses.contrastive as contrastive_module
from hcl_study.losses import (
    ESTIMATORS,
    LOSS_NAMES,
    contrastive_loss,
    contrastive_loss_views,
    contrastive_pair_losses,
    hardness_weights,
)

LABELS = torch.tensor([0, 1, 0, 2, 1, 0, 3, 1, 2, 0])  # class 3 is a singleton
MEMBERSHIPS = [
    {"self_positive": positive, "self_negative": negative}
    for positive, negative in itertools.product([True, False], repeat=2)
]  # whether the anchor is among its own positives, its own negatives


def random_sphere(batch: int, dim: int, seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(batch, dim, generator=generator, dtype=dtype), dim=1)


def naive_pairs(
    labels: Tensor, loss: str, self_positive: bool, self_negative: bool = True
) -> list[tuple[int, list[int], list[int]]]:
    """(anchor, positives, negatives) for every anchor with at least one of each."""
    batch = len(labels)
    anchors = []
    for a in range(batch):
        positives = [
            p for p in range(batch) if labels[p] == labels[a] and (self_positive or p != a)
        ]
        if loss == "ucl":
            negatives = [n for n in range(batch) if self_negative or n != a]
        else:
            negatives = [n for n in range(batch) if labels[n] != labels[a]]
        if positives and negatives:
            anchors.append((a, positives, negatives))
    return anchors


def naive_hard_loss(
    z: Tensor,
    labels: Tensor,
    *,
    loss: str,
    beta: float,
    tau: float,
    negative_scale: float = 1.0,
    self_positive: bool = True,
    self_negative: bool = True,
    detach_weights: bool = True,
) -> Tensor:
    """Mean over pairs of -log(e^{s_ap/tau} / (e^{s_ap/tau} + Q sum_n w_an e^{s_an/tau}))."""
    pair_losses = []
    for a, positives, negatives in naive_pairs(labels, loss, self_positive, self_negative):
        similarities = [z[a] @ z[n] for n in negatives]
        raw_weights = [torch.exp(beta * s) for s in similarities]
        total = sum(raw_weights)
        weights = [w / total for w in raw_weights]
        if detach_weights:
            weights = [w.detach() for w in weights]
        negative_term = sum(
            w * torch.exp(s / tau) for w, s in zip(weights, similarities, strict=True)
        )
        for p in positives:
            positive_term = torch.exp(z[a] @ z[p] / tau)
            pair_losses.append(
                -torch.log(positive_term / (positive_term + negative_scale * negative_term))
            )
    return torch.stack(pair_losses).mean()


def naive_plain_loss(
    z: Tensor,
    labels: Tensor,
    *,
    loss: str,
    tau: float,
    self_positive: bool = True,
    self_negative: bool = True,
) -> Tensor:
    """Plain SCL / UCL: the negative term is the plain mean of e^{s_an/tau} over N(a)."""
    pair_losses = []
    for a, positives, negatives in naive_pairs(labels, loss, self_positive, self_negative):
        negative_term = sum(torch.exp(z[a] @ z[n] / tau) for n in negatives) / len(negatives)
        for p in positives:
            positive_term = torch.exp(z[a] @ z[p] / tau)
            pair_losses.append(-torch.log(positive_term / (positive_term + negative_term)))
    return torch.stack(pair_losses).mean()


def naive_sample_expectation(
    z: Tensor,
    labels: Tensor,
    *,
    loss: str,
    beta: float,
    tau: float,
    num_negatives: int,
    self_negative: bool = True,
) -> float:
    """Exact expectation of the `sample` estimator, enumerating all K-tuples of negatives."""
    pair_expectations = []
    for a, positives, negatives in naive_pairs(labels, loss, True, self_negative):
        raw_weights = {n: math.exp(beta * float(z[a] @ z[n])) for n in negatives}
        total = sum(raw_weights.values())
        for p in positives:
            positive_term = math.exp(float(z[a] @ z[p]) / tau)
            expectation = 0.0
            for drawn in itertools.product(negatives, repeat=num_negatives):
                probability = math.prod(raw_weights[n] / total for n in drawn)
                mean = sum(math.exp(float(z[a] @ z[n]) / tau) for n in drawn) / num_negatives
                expectation += probability * math.log1p(mean / positive_term)
            pair_expectations.append(expectation)
    return sum(pair_expectations) / len(pair_expectations)


def simplex_etf(num_classes: int, dim: int) -> Tensor:
    """C unit vectors in R^dim with pairwise inner products -1/(C-1), dim >= C-1."""
    centered = torch.eye(num_classes, dtype=torch.float64) - 1.0 / num_classes  # (C, C)
    _, _, basis = torch.linalg.svd(centered)  # rows span R^C; the last is the ones direction
    vertices = F.normalize(centered @ basis[: num_classes - 1].T, dim=1)  # (C, C-1)
    return F.pad(vertices, (0, dim - (num_classes - 1)))  # (C, dim)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("membership", MEMBERSHIPS, ids=str)
@pytest.mark.parametrize(
    ("beta", "tau", "negative_scale"),
    [(0.0, 1.0, 1.0), (1.0, 0.5, 1.0), (5.0, 0.1, 3.0), (30.0, 2.0, 0.25)],
)
def test_reweight_matches_naive_loop(
    loss: str, membership: dict[str, bool], beta: float, tau: float, negative_scale: float
) -> None:
    z = random_sphere(len(LABELS), 4, seed=0)
    kwargs = {"loss": loss, "beta": beta, "tau": tau, "negative_scale": negative_scale}
    kwargs |= membership
    expected = naive_hard_loss(z, LABELS, **kwargs)
    actual = contrastive_loss(z, LABELS, **kwargs)
    assert actual.dtype == torch.float64
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=1e-6)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("membership", MEMBERSHIPS, ids=str)
@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_beta_zero_is_plain_loss(loss: str, membership: dict[str, bool], tau: float) -> None:
    z = random_sphere(len(LABELS), 3, seed=1)
    kwargs = {"loss": loss, "tau": tau} | membership
    expected = naive_plain_loss(z, LABELS, **kwargs)
    actual = contrastive_loss(z, LABELS, **kwargs)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def test_scl_never_counts_the_anchor_as_a_negative() -> None:
    z = random_sphere(len(LABELS), 4, seed=13)
    kwargs = {"loss": "scl", "beta": 5.0, "tau": 0.5}
    with_flag = contrastive_loss(z, LABELS, self_negative=True, **kwargs)
    assert torch.equal(with_flag, contrastive_loss(z, LABELS, self_negative=False, **kwargs))


@pytest.mark.parametrize("beta", [10.0, 50.0])
def test_hucl_self_negative_takes_the_weight_at_large_beta(beta: float) -> None:
    # On the sphere s_aa = 1 is the largest similarity, so with the anchor among its own
    # negatives w_aa -> 1 and the negative term tends to e^{1/tau} (constant: no push
    # between classes); without it the term stays a weighted mean over the other samples.
    labels = torch.arange(4).repeat_interleave(8)  # (32,)
    z = random_sphere(len(labels), 16, seed=14)
    tau = 0.5
    pairs_with_self, mask = contrastive_pair_losses(z, labels, loss="ucl", beta=beta, tau=tau)
    pairs_without_self, _ = contrastive_pair_losses(
        z, labels, loss="ucl", beta=beta, tau=tau, self_negative=False
    )
    logits = z @ z.T / tau  # (B, B)
    only_self = F.softplus(1.0 / tau - logits)  # (B, B) pair loss with negative term e^{1/tau}
    gap_with_self = (pairs_with_self - only_self)[mask].abs().max()
    gap_without_self = (pairs_without_self - only_self)[mask].abs().max()
    assert gap_with_self < 0.05 * gap_without_self


@pytest.mark.parametrize(("loss", "self_negative"), [("scl", True), ("ucl", True), ("ucl", False)])
@pytest.mark.parametrize("beta", [0.0, 3.0])
def test_hardness_weights_match_naive_loop(loss: str, self_negative: bool, beta: float) -> None:
    labels = LABELS
    z = random_sphere(len(labels), 5, seed=21)
    expected = torch.zeros(len(labels), len(labels), dtype=torch.float64)
    for a in range(len(labels)):
        if loss == "ucl":
            negatives = [n for n in range(len(labels)) if self_negative or n != a]
        else:
            negatives = [n for n in range(len(labels)) if labels[n] != labels[a]]
        total = sum(math.exp(beta * float(z[a] @ z[m])) for m in negatives)
        for n in negatives:
            expected[a, n] = math.exp(beta * float(z[a] @ z[n])) / total
    actual = hardness_weights(z, labels, loss=loss, beta=beta, self_negative=self_negative)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-15)
    assert not actual.requires_grad


def test_hardness_weights_of_an_anchor_without_negatives_are_zero() -> None:
    z = random_sphere(3, 4, seed=22)
    one_class = hardness_weights(z, torch.tensor([1, 1, 1]), loss="scl", beta=2.0)
    assert torch.equal(one_class, torch.zeros(3, 3, dtype=torch.float64))
    single = hardness_weights(z[:1], torch.tensor([0]), loss="ucl", beta=2.0, self_negative=False)
    assert torch.equal(single, torch.zeros(1, 1, dtype=torch.float64))


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_reweight_gradient_treats_weights_as_constants(loss: str) -> None:
    z = random_sphere(len(LABELS), 4, seed=2).requires_grad_()
    kwargs = {"loss": loss, "beta": 3.0, "tau": 0.5, "negative_scale": 2.0}
    (expected,) = torch.autograd.grad(naive_hard_loss(z, LABELS, **kwargs), z)
    (with_weight_gradient,) = torch.autograd.grad(
        naive_hard_loss(z, LABELS, detach_weights=False, **kwargs), z
    )
    (actual,) = torch.autograd.grad(contrastive_loss(z, LABELS, **kwargs), z)
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-12)
    assert (actual - with_weight_gradient).abs().max() > 1e-3


@pytest.mark.parametrize(("loss", "self_negative"), [("scl", True), ("ucl", True), ("ucl", False)])
@pytest.mark.parametrize("max_chunk_elements", [1 << 23, 5])
def test_sample_mean_matches_exact_expectation(
    loss: str, self_negative: bool, max_chunk_elements: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contrastive_module, "_MAX_CHUNK_ELEMENTS", max_chunk_elements)
    labels = torch.tensor([0, 1, 0, 2, 1])
    z = random_sphere(len(labels), 3, seed=3)
    kwargs = {"loss": loss, "beta": 2.0, "tau": 0.3, "num_negatives": 2}
    exact = naive_sample_expectation(z, labels, self_negative=self_negative, **kwargs)
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [
            contrastive_loss(
                z,
                labels,
                estimator="sample",
                self_negative=self_negative,
                generator=generator,
                **kwargs,
            )
            for _ in range(3000)
        ]
    )
    standard_error = draws.std() / math.sqrt(len(draws))
    assert abs(draws.mean() - exact) < 4 * standard_error
    reweighted = contrastive_loss(
        z, labels, loss=loss, beta=2.0, tau=0.3, self_negative=self_negative
    )
    assert exact < reweighted  # Jensen: with K = 2 the sampled loss is biased low


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("beta", [0.0, 4.0])
def test_sample_mean_matches_reweight_for_many_negatives(loss: str, beta: float) -> None:
    z = random_sphere(len(LABELS), 4, seed=4)
    expected = naive_hard_loss(z, LABELS, loss=loss, beta=beta, tau=0.5, negative_scale=2.0)
    generator = torch.Generator().manual_seed(1)
    draws = torch.stack(
        [
            contrastive_loss(
                z,
                LABELS,
                loss=loss,
                beta=beta,
                tau=0.5,
                negative_scale=2.0,
                estimator="sample",
                num_negatives=4096,
                generator=generator,
            )
            for _ in range(200)
        ]
    )
    standard_error = draws.std() / math.sqrt(len(draws))
    assert standard_error > 0
    assert abs(draws.mean() - expected) < 4 * standard_error


def test_sample_is_reproducible_with_a_generator() -> None:
    z = random_sphere(len(LABELS), 4, seed=5)

    def draw(seed: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed)
        return contrastive_loss(
            z, LABELS, beta=1.0, estimator="sample", num_negatives=4, generator=generator
        )

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    batch=st.integers(2, 8),
    dim=st.integers(1, 4),
    tau=st.floats(0.05, 5.0),
    beta=st.floats(0.0, 20.0),
    loss=st.sampled_from(LOSS_NAMES),
    self_positive=st.booleans(),
    self_negative=st.booleans(),
)
def test_hard_loss_bounds_plain_loss_per_pair(
    data: st.DataObject,
    batch: int,
    dim: int,
    tau: float,
    beta: float,
    loss: str,
    self_positive: bool,
    self_negative: bool,
) -> None:
    labels = torch.tensor(data.draw(st.lists(st.integers(0, 2), min_size=batch, max_size=batch)))
    values = data.draw(st.lists(st.floats(-2.0, 2.0), min_size=batch * dim, max_size=batch * dim))
    z = torch.tensor(values, dtype=torch.float64).reshape(batch, dim)
    kwargs = {
        "loss": loss,
        "tau": tau,
        "self_positive": self_positive,
        "self_negative": self_negative,
    }
    hard, mask = contrastive_pair_losses(z, labels, beta=beta, **kwargs)
    plain, plain_mask = contrastive_pair_losses(z, labels, beta=0.0, **kwargs)
    assert torch.equal(mask, plain_mask)
    assert torch.all(hard[mask] >= plain[mask] - 1e-9 * (1.0 + plain[mask].abs()))
    hard_mean = contrastive_loss(z, labels, beta=beta, **kwargs)
    plain_mean = contrastive_loss(z, labels, beta=0.0, **kwargs)
    assert hard_mean >= plain_mean - 1e-9 * (1.0 + plain_mean.abs())


@pytest.mark.parametrize(("num_classes", "per_class", "dim"), [(2, 3, 1), (3, 1, 4), (5, 4, 4)])
@pytest.mark.parametrize(("beta", "tau", "negative_scale"), [(0.0, 1.0, 1.0), (5.0, 0.2, 4.0)])
def test_simplex_etf_loss_equals_closed_form(
    num_classes: int, per_class: int, dim: int, beta: float, tau: float, negative_scale: float
) -> None:
    labels = torch.arange(num_classes).repeat_interleave(per_class)  # (B,)
    z = simplex_etf(num_classes, dim)[labels]  # (B, dim)
    # Every positive has s_ap = 1 and every negative s_an = -1/(C-1), so the weights are
    # uniform and every pair has loss log(1 + Q exp((-1/(C-1) - 1) / tau)).
    closed_form = math.log1p(negative_scale * math.exp(-num_classes / ((num_classes - 1) * tau)))
    actual = contrastive_loss(
        z, labels, loss="scl", beta=beta, tau=tau, negative_scale=negative_scale
    )
    assert actual.item() == pytest.approx(closed_form, rel=1e-12)


@pytest.mark.parametrize("beta", [0.0, 5.0])
@pytest.mark.parametrize("dim", [4, 6])
def test_simplex_etf_perturbations_raise_scl_loss(beta: float, dim: int) -> None:
    num_classes, per_class, tau = 5, 3, 0.5
    labels = torch.arange(num_classes).repeat_interleave(per_class)  # (B,)
    z = simplex_etf(num_classes, dim)[labels]  # (B, dim)
    at_etf = contrastive_loss(z, labels, beta=beta, tau=tau)
    generator = torch.Generator().manual_seed(6)
    for _ in range(20):
        noise = torch.randn(z.shape, generator=generator, dtype=z.dtype)  # (B, dim)
        perturbed = F.normalize(z + 1e-2 * noise, dim=1)
        assert contrastive_loss(perturbed, labels, beta=beta, tau=tau) > at_etf + 1e-7


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_large_unnormalized_features_stay_finite(loss: str, estimator: str) -> None:
    generator = torch.Generator().manual_seed(7)
    directions = F.normalize(torch.randn(16, 8, generator=generator), dim=1)  # (B, d)
    scales = 30.0 + torch.rand(16, 1, generator=generator)  # (B, 1)
    labels = torch.randint(0, 3, (16,), generator=generator)
    z = (directions * scales).requires_grad_()  # (B, d), ||z|| in [30, 31]
    beta, tau = 50.0, 0.5
    assert torch.isinf(torch.exp(beta * (z @ z.T))).any()  # a naive loss would overflow
    kwargs = {"loss": loss, "beta": beta, "tau": tau, "estimator": estimator}
    value = contrastive_loss(z, labels, generator=torch.Generator().manual_seed(0), **kwargs)
    (gradient,) = torch.autograd.grad(value, z)
    assert torch.isfinite(value)
    assert torch.isfinite(gradient).all()
    assert gradient.abs().max() > 0
    in_float64 = contrastive_loss(
        z.double(), labels, generator=torch.Generator().manual_seed(0), **kwargs
    )
    torch.testing.assert_close(value.double(), in_float64, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_overflowing_similarities_give_a_nan_loss_not_an_error(loss: str, estimator: str) -> None:
    """Finite features whose similarities overflow float32 (a diverging run): both estimators
    return NaN, still connected to z, where drawing from the NaN weights would raise."""
    generator = torch.Generator().manual_seed(3)
    z = (1e20 * torch.randn(12, 4, generator=generator)).requires_grad_()  # (B, d), finite
    labels = torch.randint(0, 3, (12,), generator=generator)
    assert torch.isfinite(z).all() and torch.isinf(z @ z.T).any()

    value = contrastive_loss(
        z, labels, loss=loss, beta=2.0, estimator=estimator, generator=generator
    )

    assert torch.isnan(value)
    assert value.requires_grad


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize(
    ("loss", "labels", "self_positive"),
    [
        ("scl", torch.zeros(6, dtype=torch.long), True),  # one class: no negatives
        ("ucl", torch.arange(6), False),  # singleton classes: no positives
        ("ucl", torch.zeros(1, dtype=torch.long), True),  # one sample, not its own negative
    ],
)
def test_batch_without_pairs_gives_connected_zero(
    estimator: str, loss: str, labels: Tensor, self_positive: bool
) -> None:
    z = random_sphere(len(labels), 3, seed=8).requires_grad_()
    value = contrastive_loss(
        z,
        labels,
        loss=loss,
        estimator=estimator,
        beta=2.0,
        self_positive=self_positive,
        self_negative=False,
    )
    assert value.item() == 0.0
    assert value.grad_fn is not None
    (gradient,) = torch.autograd.grad(value, z)
    assert torch.equal(gradient, torch.zeros_like(z))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_bfloat16_input_is_computed_in_float32(estimator: str) -> None:
    z = random_sphere(len(LABELS), 4, seed=9, dtype=torch.float32).bfloat16().requires_grad_()
    kwargs = {"beta": 5.0, "tau": 0.1, "estimator": estimator, "num_negatives": 8}
    value = contrastive_loss(z, LABELS, generator=torch.Generator().manual_seed(0), **kwargs)
    in_float32 = contrastive_loss(
        z.detach().float(), LABELS, generator=torch.Generator().manual_seed(0), **kwargs
    )
    assert value.dtype == torch.float32
    assert torch.equal(value, in_float32)
    (gradient,) = torch.autograd.grad(value, z)
    assert gradient.dtype == torch.bfloat16


@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_views_with_scl_negatives_is_nt_xent(tau: float) -> None:
    batch = 5
    z1, z2 = random_sphere(2 * batch, 3, seed=10).split(batch)
    views = torch.cat([z1, z2])  # (2B, d)
    nt_xent_terms = []
    for i in range(2 * batch):
        other_view = (i + batch) % (2 * batch)
        denominator = sum(torch.exp(views[i] @ views[k] / tau) for k in range(2 * batch) if k != i)
        positive_term = torch.exp(views[i] @ views[other_view] / tau)
        nt_xent_terms.append(-torch.log(positive_term / denominator))
    expected = torch.stack(nt_xent_terms).mean()
    actual = contrastive_loss_views(z1, z2, tau=tau, negative_scale=2 * (batch - 1))
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("self_negative", [True, False])
def test_views_with_ucl_negatives_take_every_view(self_negative: bool) -> None:
    # beta = 0 and Q = |N(a)| make the negative term the plain sum over N(a): all 2B views,
    # or all but the anchor, the positive view included in both.
    batch, tau = 4, 0.5
    z1, z2 = random_sphere(2 * batch, 3, seed=15).split(batch)
    views = torch.cat([z1, z2])  # (2B, d)
    terms = []
    for i in range(2 * batch):
        negatives = [k for k in range(2 * batch) if self_negative or k != i]
        negative_sum = sum(torch.exp(views[i] @ views[k] / tau) for k in negatives)
        positive_term = torch.exp(views[i] @ views[(i + batch) % (2 * batch)] / tau)
        terms.append(-torch.log(positive_term / (positive_term + negative_sum)))
    expected = torch.stack(terms).mean()
    actual = contrastive_loss_views(
        z1,
        z2,
        loss="ucl",
        tau=tau,
        negative_scale=2 * batch - (0 if self_negative else 1),
        self_negative=self_negative,
    )
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("tau", 0.0, "tau must be"),
        ("tau", -1.0, "tau must be"),
        ("tau", math.inf, "tau must be"),
        ("beta", math.nan, "beta must be"),
        ("negative_scale", math.inf, "negative_scale must be"),
        ("beta", -0.5, "beta must be"),
        ("loss", "hscl", r"loss must be one of \('scl', 'ucl'\)"),
        ("estimator", "exact", r"estimator must be one of \('reweight', 'sample'\)"),
        ("num_negatives", 0, "num_negatives must be"),
        ("num_negatives", 2.5, "num_negatives must be"),
        ("negative_scale", 0.0, "negative_scale must be"),
    ],
)
def test_invalid_arguments_raise(argument: str, value: object, message: str) -> None:
    z = random_sphere(4, 2, seed=11)
    with pytest.raises(ValueError, match=message):
        contrastive_loss(z, torch.tensor([0, 0, 1, 1]), **{argument: value})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_cuda_matches_cpu(loss: str) -> None:
    z = random_sphere(len(LABELS), 4, seed=12)
    kwargs = {"loss": loss, "beta": 3.0, "tau": 0.5}
    on_cpu = contrastive_loss(z, LABELS, **kwargs)
    on_cuda = contrastive_loss(z.cuda(), LABELS.cuda(), **kwargs)
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-9, atol=1e-12)
    generator = torch.Generator(device="cuda").manual_seed(0)
    sampled = contrastive_loss(
        z.cuda(), LABELS.cuda(), estimator="sample", generator=generator, **kwargs
    )
    assert sampled.device.type == "cuda"
    assert torch.isfinite(sampled)
