"""The level-set surrogate: where an order parameter crosses a level, and where to look next.

This is the one shared model behind the boundary searcher (`hcl_study.study.boundary_search`)
and the phase-boundary analysis (`analysis.boundary`). Every model works in the unit cube:
an `Axis` maps natural values to [0, 1] (log axes through log(x + offset)), so length scales,
distances and areas are all measured in unit coordinates.

Parts:
- `Axis`, `to_unit`, `from_unit`, `unit_grid`: coordinates.
- `fit_gp_regression` -> `GPRegression`: a GP of a continuous order parameter, with a noise
  term, latent (noise-free) posterior std, and kriging-believer fantasies for pending points.
- `fit_probability` -> `ProbabilityModel`: P(label | x) from binary labels (GP classifier,
  logistic fallback) with a 5-95 % band and the chance of the wrong side of 0.5;
  `bootstrap_probability` resamples it.
- `contour_lines`, `level_set`, `gp_level_set`, `symmetric_difference_fraction`,
  `other_side_probability`: boundaries and their expected error.
- `straddle`, `misclassification_reduction`, `propose`, `space_filling_point`: acquisition.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from contourpy import contour_generator
from numpy.typing import ArrayLike
from scipy.linalg import solve_triangular
from scipy.special import expit, ndtr, owens_t
from scipy.stats import qmc
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, Matern, WhiteKernel
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import PolynomialFeatures

Z_95 = 1.96
"""Two-sided 95 % normal quantile, the half-width of the μ ± z·σ band."""
Z_90 = 1.645
"""Two-sided 90 % normal quantile: the 5-95 % interval of a classifier's latent function."""

Acquisition = Literal["sur", "straddle"]

LENGTH_SCALE_BOUNDS = (0.03, 10.0)  # unit coordinates
AMPLITUDE_BOUNDS = (1e-2, 1e2)  # standardized y
CLASSIFIER_AMPLITUDE_BOUNDS = (1e-2, 10.0)  # latent logits
NOISE_BOUNDS = (1e-6, 1.0)  # variance, standardized y
GRID_RESOLUTION = {1: 512, 2: 80}
FAILURE_BANDWIDTH = 0.1  # unit coordinates: how far a failed trial lowers success odds


@dataclass(frozen=True)
class Axis:
    """One continuous search axis, mapped to the unit interval for modelling.

    Attributes:
        name: The config key, e.g. "loss.beta".
        low: Lower bound (natural units).
        high: Upper bound (natural units).
        log: Model log(x + offset) instead of x.
        offset: Added before the log, so that e.g. β ∈ [0, 50] works as log(β + 1).
    """

    name: str
    low: float
    high: float
    log: bool = False
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"axis {self.name}: low ({self.low}) must be below high ({self.high})")
        if self.log and self.low + self.offset <= 0:
            raise ValueError(
                f"axis {self.name}: a log axis needs low + offset > 0 "
                f"(got {self.low} + {self.offset})"
            )

    def _warp(self, values: np.ndarray) -> np.ndarray:
        return np.log(values + self.offset) if self.log else values

    def _warped_bounds(self) -> tuple[float, float]:
        low, high = self._warp(np.array([self.low, self.high], dtype=float))
        return float(low), float(high)

    def to_unit(self, values: ArrayLike) -> np.ndarray:
        """Natural values -> unit coordinates (0 at `low`, 1 at `high`)."""
        low, high = self._warped_bounds()
        return (self._warp(np.asarray(values, dtype=float)) - low) / (high - low)

    def from_unit(self, unit: ArrayLike) -> np.ndarray:
        """Unit coordinates -> natural values, clipped to [low, high] against rounding."""
        low, high = self._warped_bounds()
        warped = low + np.asarray(unit, dtype=float) * (high - low)
        natural = np.exp(warped) - self.offset if self.log else warped
        return np.clip(natural, self.low, self.high)


def to_unit(axes: Sequence[Axis], points: ArrayLike) -> np.ndarray:
    """Map natural points (n, d) to unit coordinates (n, d)."""
    points = np.atleast_2d(np.asarray(points, dtype=float))  # (n, d)
    return np.column_stack([axis.to_unit(points[:, i]) for i, axis in enumerate(axes)])


def from_unit(axes: Sequence[Axis], unit: ArrayLike) -> np.ndarray:
    """Map unit points (n, d) to natural coordinates (n, d)."""
    unit = np.atleast_2d(np.asarray(unit, dtype=float))  # (n, d)
    return np.column_stack([axis.from_unit(unit[:, i]) for i, axis in enumerate(axes)])


def unit_grid(dim: int, resolution: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """A regular grid over the unit square (dim 2) or interval (dim 1).

    Returns:
        The per-axis coordinates (resolution,) each, and all grid points (resolution**dim, dim)
        in row-major order, so that a field reshapes to (resolution,) or (res_y, res_x).
    """
    if dim not in GRID_RESOLUTION:
        raise ValueError(f"level-set grids exist for 1 or 2 continuous axes, not {dim}")
    resolution = resolution or GRID_RESOLUTION[dim]
    ticks = np.linspace(0.0, 1.0, resolution)  # (k,)
    if dim == 1:
        return [ticks], ticks[:, None]
    grid_y, grid_x = np.meshgrid(ticks, ticks, indexing="ij")  # (k, k) each
    return [ticks, ticks], np.column_stack([grid_x.ravel(), grid_y.ravel()])


def sobol_points(dim: int, count: int, seed: int | Sequence[int]) -> np.ndarray:
    """`count` scrambled Sobol points in the unit cube, (count, dim); a prefix of 2**m."""
    m = max(1, math.ceil(math.log2(count)))
    rng = np.random.default_rng(seed)
    return qmc.Sobol(dim, scramble=True, rng=rng).random_base2(m)[:count]


def latin_hypercube(dim: int, count: int, seed: int | Sequence[int]) -> np.ndarray:
    """A seeded, space-filling (centered-discrepancy optimized) Latin hypercube, (count, dim)."""
    rng = np.random.default_rng(seed)
    optimization = "random-cd" if dim > 1 else None
    return qmc.LatinHypercube(dim, optimization=optimization, rng=rng).random(count)


# --------------------------------------------------------------------------- GP regression


def signal_kernel(dim: int, amplitude_bounds: tuple[float, float] = AMPLITUDE_BOUNDS) -> Kernel:
    """Amplitude × Matérn-5/2 with one length scale per axis (ARD), for unit coordinates."""
    return ConstantKernel(1.0, amplitude_bounds) * Matern(
        length_scale=np.full(dim, 0.3), length_scale_bounds=LENGTH_SCALE_BOUNDS, nu=2.5
    )


def regression_kernel(dim: int) -> Kernel:
    """`signal_kernel` plus a learned white-noise term."""
    return signal_kernel(dim) + WhiteKernel(1e-2, NOISE_BOUNDS)


@dataclass(frozen=True)
class GPRegression:
    """A fitted GP surrogate on unit coordinates; y is standardized by (y_mean, y_scale).

    The kernel is always signal + WhiteKernel; `predict` returns the latent (noise-free)
    std, i.e. the uncertainty of the order parameter itself, not of one noisy trial.
    """

    model: GaussianProcessRegressor
    y_mean: float
    y_scale: float

    @property
    def kernel(self) -> Kernel:
        """The fitted kernel (start point for warm refits, or fixed for fantasies)."""
        return self.model.kernel_

    @property
    def noise_variance(self) -> float:
        """Observation noise variance in standardized units."""
        return float(self.kernel.k2.noise_level)

    @property
    def train_x(self) -> np.ndarray:
        """Training points (n, d), fantasies included."""
        return self.model.X_train_

    def latent(self, unit_x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Standardized posterior mean (m,), latent variance (m,) and L⁻¹k(X_train, x) (n, m)."""
        cross = self.kernel.k1(self.train_x, unit_x)  # (n, m)
        whitened = solve_triangular(self.model.L_, cross, lower=True)  # (n, m)
        mean = cross.T @ self.model.alpha_  # (m,)
        variance = np.clip(self.kernel.k1.diag(unit_x) - np.sum(whitened**2, axis=0), 0, None)
        return mean, variance, whitened

    def predict(self, unit_x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and latent std at unit points (m, d), in the units of y."""
        mean, variance, _ = self.latent(np.atleast_2d(np.asarray(unit_x, dtype=float)))
        return self.y_mean + self.y_scale * mean, self.y_scale * np.sqrt(variance)

    def fantasize(self, pending: ArrayLike) -> GPRegression:
        """Kriging believer: add pending points at the posterior mean, hyperparameters fixed."""
        pending = np.atleast_2d(np.asarray(pending, dtype=float))  # (p, d)
        if pending.shape[0] == 0:
            return self
        believed, _ = self.predict(pending)  # (p,)
        y_train = self.y_mean + self.y_scale * self.model.y_train_  # (n,)
        return _fit_standardized(
            np.vstack([self.train_x, pending]),
            np.concatenate([y_train, believed]),
            kernel=self.kernel,
            optimizer=None,
            n_restarts=0,
            seed=0,
            y_mean=self.y_mean,
            y_scale=self.y_scale,
        )


def _fit_standardized(
    unit_x: np.ndarray,
    y: np.ndarray,
    *,
    kernel: Kernel,
    optimizer: str | None,
    n_restarts: int,
    seed: int,
    y_mean: float,
    y_scale: float,
) -> GPRegression:
    model = GaussianProcessRegressor(
        kernel=kernel,
        optimizer=optimizer,
        n_restarts_optimizer=n_restarts,
        random_state=seed,
        normalize_y=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(unit_x, (y - y_mean) / y_scale)
    return GPRegression(model=model, y_mean=y_mean, y_scale=y_scale)


def fit_gp_regression(
    unit_x: ArrayLike,
    y: ArrayLike,
    *,
    seed: int = 0,
    n_restarts: int = 2,
    kernel: Kernel | None = None,
    optimize: bool = True,
) -> GPRegression:
    """Fit the GP regression surrogate of an order parameter.

    Args:
        unit_x: Points in unit coordinates, (n, d).
        y: Finite observations, (n,). Standardized internally (the normalize_y of sklearn).
        seed: Seed of the optimizer restarts.
        n_restarts: Extra random starts of the marginal-likelihood optimizer.
        kernel: Start (or, with optimize=False, fixed) hyperparameters; default
            `regression_kernel`.
        optimize: Fit hyperparameters by marginal likelihood (else keep `kernel`).

    Returns:
        The fitted surrogate.
    """
    unit_x = np.atleast_2d(np.asarray(unit_x, dtype=float))  # (n, d)
    y = np.asarray(y, dtype=float)  # (n,)
    if unit_x.shape[0] != y.shape[0] or y.shape[0] < 2:
        raise ValueError(f"need at least 2 points with one y each, got {unit_x.shape}, {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("GP regression needs finite observations; drop diverged trials first")
    spread = float(np.std(y))
    return _fit_standardized(
        unit_x,
        y,
        kernel=kernel if kernel is not None else regression_kernel(unit_x.shape[1]),
        optimizer="fmin_l_bfgs_b" if optimize else None,
        n_restarts=n_restarts if optimize else 0,
        seed=seed,
        y_mean=float(np.mean(y)),
        y_scale=spread if spread > 1e-12 else 1.0,
    )


# --------------------------------------------------------------------------- classification


def classification_kernel(dim: int) -> Kernel:
    """`signal_kernel` with the latent amplitude capped at 10 (prior std ≈ 3.2 logits).

    On nearly separable labels the marginal likelihood pushes the amplitude up without
    bound; the Laplace posterior then stays close to that huge prior wherever the logistic
    likelihood saturates, and the posterior band fills the domain.
    """
    return signal_kernel(dim, CLASSIFIER_AMPLITUDE_BOUNDS)


def other_side_probability(gap: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Φ(−|gap| / std): the chance that a normal with that std about a mean `gap` away from
    a level lies on the other side of it (0 where std is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, ndtr(-np.abs(gap) / std), 0.0)


@dataclass(frozen=True)
class ProbabilityModel:
    """P(label | x) on unit coordinates (a GP classifier or the logistic fallback) and its data.

    Attributes:
        model: The fitted scikit-learn classifier.
        method: "gp" (Laplace GP classifier) or "logistic" (quadratic features, L2).
        unit_x: Training points, (n, d).
        labels: Training labels, (n,).
    """

    model: GaussianProcessClassifier | Pipeline
    method: Literal["gp", "logistic"]
    unit_x: np.ndarray
    labels: np.ndarray

    def predict_proba(self, unit_x: ArrayLike) -> np.ndarray:
        """P(label is True) at unit points (m, d) -> (m,)."""
        return self.model.predict_proba(np.atleast_2d(np.asarray(unit_x, dtype=float)))[:, 1]

    def uncertainty(
        self, unit_x: ArrayLike, *, n_bootstrap: int = 100, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The 5-95 % interval of P at unit points (m, d), and the probability that the true
        P lies on the other side of 0.5 than `predict_proba` puts it: three arrays (m,).

        A GP uses its Laplace posterior of the latent function f (P > 0.5 iff f > 0), mapped
        through the logistic link (this covers gaps between the data, which a bootstrap of
        the smoother misses); the logistic fallback uses stratified bootstrap resamples
        (`bootstrap_probability`).
        """
        unit_x = np.atleast_2d(np.asarray(unit_x, dtype=float))  # (m, d)
        if self.method == "logistic":
            draws = bootstrap_probability(self, unit_x, n_bootstrap=n_bootstrap, seed=seed)
            lower, upper = np.quantile(draws, [0.05, 0.95], axis=0)
            wrong_side = np.mean((draws > 0.5) != (self.predict_proba(unit_x) > 0.5), axis=0)
            return lower, upper, wrong_side
        mean, variance = self.model.latent_mean_and_variance(unit_x)  # (m,) each
        std = np.sqrt(np.clip(variance, 0, None))
        wrong_side = other_side_probability(mean, std)
        return expit(mean - Z_90 * std), expit(mean + Z_90 * std), wrong_side


def _logistic_model(unit_x: np.ndarray, labels: np.ndarray) -> ProbabilityModel:
    pipeline = make_pipeline(PolynomialFeatures(degree=2), LogisticRegression(C=1.0))
    return ProbabilityModel(pipeline.fit(unit_x, labels), "logistic", unit_x, labels)


def fit_probability(
    unit_x: ArrayLike,
    labels: ArrayLike,
    *,
    method: Literal["gp", "logistic"] = "gp",
    seed: int = 0,
    n_restarts: int = 2,
    kernel: Kernel | None = None,
    optimize: bool = True,
) -> ProbabilityModel:
    """Fit P(label | x) with a GP classifier (Laplace), falling back to logistic regression.

    The fallback (L2-regularized logistic regression on quadratic features) is used when
    asked for, or when the GP classifier raises (e.g. a singular Laplace step).

    Args:
        unit_x: Points in unit coordinates, (n, d).
        labels: Booleans, (n,); both values must occur.
        method: "gp", or "logistic" to skip the GP.
        seed: Seed of the optimizer restarts.
        n_restarts: Extra random starts of the marginal-likelihood optimizer.
        kernel: Start (or, with optimize=False, fixed) hyperparameters; default
            `classification_kernel`.
        optimize: Fit hyperparameters (else keep `kernel`).
    """
    unit_x = np.atleast_2d(np.asarray(unit_x, dtype=float))  # (n, d)
    labels = np.asarray(labels, dtype=bool)  # (n,)
    if labels.all() or not labels.any():
        raise ValueError("P(label | x) needs both labels among the points")
    if method == "logistic":
        return _logistic_model(unit_x, labels)
    classifier = GaussianProcessClassifier(
        kernel=kernel if kernel is not None else classification_kernel(unit_x.shape[1]),
        optimizer="fmin_l_bfgs_b" if optimize else None,
        n_restarts_optimizer=n_restarts if optimize else 0,
        random_state=seed,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(unit_x, labels)
        if not np.all(np.isfinite(classifier.predict_proba(unit_x))):
            raise ValueError("non-finite GP class probabilities")
    except (ValueError, np.linalg.LinAlgError):
        return _logistic_model(unit_x, labels)
    return ProbabilityModel(classifier, "gp", unit_x, labels)


def bootstrap_probability(
    model: ProbabilityModel, query: ArrayLike, *, n_bootstrap: int = 100, seed: int = 0
) -> np.ndarray:
    """P(label | query) refitted on stratified bootstrap resamples of the model's data.

    Each resample keeps the count of each label (so both labels always occur); a GP model
    keeps its fitted hyperparameters (refit of the latent function only, which is fast).

    Returns:
        The resampled probabilities, (n_bootstrap, m).
    """
    query = np.atleast_2d(np.asarray(query, dtype=float))  # (m, d)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(model.labels), np.flatnonzero(~model.labels)]
    draws = np.empty((n_bootstrap, query.shape[0]))  # (B, m)
    for b in range(n_bootstrap):
        index = np.concatenate([rng.choice(group, size=group.size) for group in groups])
        refit = fit_probability(
            model.unit_x[index],
            model.labels[index],
            method=model.method,
            kernel=model.model.kernel_ if model.method == "gp" else None,
            optimize=False,
        )
        draws[b] = refit.predict_proba(query)
    return draws


# --------------------------------------------------------------------------- boundaries


def contour_lines(axes: Sequence[Axis], field: np.ndarray, level: float) -> list[np.ndarray]:
    """The level set of a field on the `unit_grid`, as polylines in natural coordinates.

    Args:
        axes: The 1 or 2 axes of the grid.
        field: Values on the grid, (k,) or (k_y, k_x).
        level: The level.

    Returns:
        Polylines (m, d) in natural coordinates; in 1-D each crossing is one (1, 1) array.
    """
    if len(axes) == 1:
        ticks = np.linspace(0.0, 1.0, field.shape[0])  # (k,)
        above = field > level  # (k,)
        crossings = np.flatnonzero(above[1:] != above[:-1])
        fraction = (level - field[crossings]) / (field[crossings + 1] - field[crossings])
        unit = ticks[crossings] + fraction * (ticks[1] - ticks[0])  # (c,)
        return [from_unit(axes, [[u]]) for u in unit]
    ticks_y = np.linspace(0.0, 1.0, field.shape[0])  # (k_y,)
    ticks_x = np.linspace(0.0, 1.0, field.shape[1])  # (k_x,)
    lines = contour_generator(ticks_x, ticks_y, field).lines(level)
    return [from_unit(axes, line) for line in lines if len(line) > 1]


def symmetric_difference_fraction(region_a: np.ndarray, region_b: np.ndarray) -> float:
    """Area of (A xor B) as a fraction of the domain, for boolean regions on one grid."""
    if region_a.shape != region_b.shape:
        raise ValueError(f"regions differ in shape: {region_a.shape} vs {region_b.shape}")
    return float(np.mean(region_a != region_b))


@dataclass(frozen=True)
class LevelSet:
    """A field on the unit grid, its level set, and its uncertainty.

    Attributes:
        axes: The 1 or 2 axes (x first).
        level: The level (threshold of the order parameter, or 0.5 for P(NC)).
        ticks: Natural coordinates of the grid along each axis, (k,) each.
        field: Best estimate on the grid, (k,) or (k_y, k_x).
        lower: Lower band surface (μ − 1.96σ, or the 5 % quantile of P), same shape.
        upper: Upper band surface, same shape.
        contour: The level set of `field`, polylines (m, d) in natural coordinates.
        lower_contour: The level set of `lower` (one edge of the band).
        upper_contour: The level set of `upper` (the other edge).
        wrong_side: The model's probability that each grid point lies on the other side of
            the level than `field` puts it, same shape as `field`.
    """

    axes: tuple[Axis, ...]
    level: float
    ticks: tuple[np.ndarray, ...]
    field: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    contour: list[np.ndarray]
    lower_contour: list[np.ndarray]
    upper_contour: list[np.ndarray]
    wrong_side: np.ndarray

    @property
    def region(self) -> np.ndarray:
        """{field > level} on the grid (boolean, shape of `field`)."""
        return self.field > self.level

    @property
    def band(self) -> np.ndarray:
        """Where the band straddles the level: lower ≤ level ≤ upper (boolean)."""
        return (self.lower <= self.level) & (self.upper >= self.level)

    @property
    def expected_error(self) -> float:
        """The expected share of the domain where `region` is wrong, under the model."""
        return float(np.mean(self.wrong_side))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: the contours, the band's area fraction, the expected error."""
        return {
            "axes": [axis.name for axis in self.axes],
            "level": self.level,
            "contour": [line.tolist() for line in self.contour],
            "lower_contour": [line.tolist() for line in self.lower_contour],
            "upper_contour": [line.tolist() for line in self.upper_contour],
            "region_fraction": float(np.mean(self.region)),
            "band_fraction": float(np.mean(self.band)),
            "expected_error": self.expected_error,
        }


def level_set(
    axes: Sequence[Axis],
    field: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    level: float,
    wrong_side: np.ndarray,
) -> LevelSet:
    """Bundle fields on the `unit_grid` (shape (k,) or (k_y, k_x)) with their contours."""
    ticks = tuple(
        axis.from_unit(np.linspace(0.0, 1.0, size))
        for axis, size in zip(axes, field.shape[::-1], strict=True)
    )
    return LevelSet(
        axes=tuple(axes),
        level=level,
        ticks=ticks,
        field=field,
        lower=lower,
        upper=upper,
        contour=contour_lines(axes, field, level),
        lower_contour=contour_lines(axes, lower, level),
        upper_contour=contour_lines(axes, upper, level),
        wrong_side=wrong_side,
    )


def gp_level_set(
    gp: GPRegression, axes: Sequence[Axis], level: float, resolution: int | None = None
) -> LevelSet:
    """The level set of the GP mean, with the μ ± 1.96σ band (latent σ) and the probability
    Φ(−|μ − t| / σ) that the latent order parameter lies on the other side of t."""
    ticks, points = unit_grid(len(axes), resolution)
    mean, std = gp.predict(points)  # (k**d,) each
    shape = tuple(tick.size for tick in reversed(ticks))  # (k,) or (k_y, k_x)
    mean, std = mean.reshape(shape), std.reshape(shape)
    wrong_side = other_side_probability(mean - level, std)
    return level_set(axes, mean, mean - Z_95 * std, mean + Z_95 * std, level, wrong_side)


# --------------------------------------------------------------------------- acquisition


def straddle(mean: np.ndarray, std: np.ndarray, threshold: float) -> np.ndarray:
    """The straddle score 1.96·σ − |μ − t| (Bryan et al. 2005): high near an uncertain level."""
    return Z_95 * std - np.abs(mean - threshold)


def bivariate_normal_cdf(h: ArrayLike, k: ArrayLike, rho: ArrayLike) -> np.ndarray:
    """P(X ≤ h, Y ≤ k) for standard normals X, Y with correlation rho, |rho| < 1 (broadcast).

    Owen's (1956) formula in terms of his T function, exact and vectorized:
    Φ₂ = ½(Φ(h) + Φ(k)) − T(h, a_h) − T(k, a_k) − [½ if hk < 0],
    with a_h = (k − ρh)/(h√(1 − ρ²)) and a_k = (h − ρk)/(k√(1 − ρ²)).
    """
    h, k, rho = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (h, k, rho)))
    # the formula has removable singularities at h = 0 or k = 0, and Φ₂ is continuous there
    h = np.where(h == 0, 1e-15, h)
    k = np.where(k == 0, 1e-15, k)
    root = np.sqrt(1.0 - rho**2)
    t_h = owens_t(h, (k - rho * h) / (h * root))
    t_k = owens_t(k, (h - rho * k) / (k * root))
    correction = np.where(h * k < 0, 0.5, 0.0)
    return 0.5 * (ndtr(h) + ndtr(k)) - t_h - t_k - correction


def misclassification_reduction(
    gp: GPRegression,
    candidates: np.ndarray,
    reference: np.ndarray,
    threshold: float,
    reference_weights: np.ndarray | None = None,
) -> np.ndarray:
    """SUR (Bect et al. 2012): how much one more trial at each candidate is expected to shrink
    the misclassification area of the estimated region {μ > t}.

    At a reference point z the probability that the side of t given by the posterior mean is
    wrong is Φ(−|μ(z) − t| / σ(z)) (latent σ). A noisy trial at x moves the mean to
    μ(z) + s·Z, Z ~ N(0, 1), s = |cov(z, x)| / √(σ²(x) + noise), and leaves variance
    σ²(z) − s². The expected misclassification after that trial has the closed form
    Φ₂(u/σ, −u/s; −s/σ) + Φ₂(−u/σ, u/s; −s/σ) with u = μ(z) − t. The score is the
    reduction summed over the reference points; it is ≥ 0, since the posterior probability
    of being above t is a martingale and min(p, 1 − p) is concave.

    Args:
        gp: The surrogate (fantasies included).
        candidates: Unit points (c, d) to score.
        reference: Unit points (r, d) approximating the domain integral.
        threshold: The level t.
        reference_weights: Weights (r,) of the reference points in the sum (all 1 if None).

    Returns:
        Expected reduction of the summed misclassification probability, (c,).
    """
    reference_mean, reference_variance, reference_whitened = gp.latent(reference)
    _, candidate_variance, candidate_whitened = gp.latent(candidates)  # (c,), (n, c)
    gap = reference_mean - (threshold - gp.y_mean) / gp.y_scale  # u, standardized (r,)
    sigma = np.sqrt(np.clip(reference_variance, 1e-18, None))  # (r,)
    # posterior covariance between reference and candidates, standardized units: (r, c)
    covariance = gp.kernel.k1(reference, candidates) - reference_whitened.T @ candidate_whitened
    shift = np.abs(covariance) / np.sqrt(candidate_variance + gp.noise_variance)  # s, (r, c)
    ratio = np.clip(shift / sigma[:, None], 1e-12, 1.0 - 1e-9)  # s/σ, (r, c)
    shift = ratio * sigma[:, None]
    a = (gap / sigma)[:, None]  # (r, 1)
    b = gap[:, None] / shift  # (r, c)
    expected = bivariate_normal_cdf(a, -b, -ratio) + bivariate_normal_cdf(-a, b, -ratio)
    current = other_side_probability(gap, sigma)  # (r,)
    weights = np.ones(reference.shape[0]) if reference_weights is None else reference_weights
    return np.sum(weights[:, None] * (current[:, None] - expected), axis=0)


def _allowed(candidates: np.ndarray, avoid: np.ndarray, radius: np.ndarray) -> np.ndarray:
    if avoid.shape[0] == 0:
        return np.ones(candidates.shape[0], dtype=bool)
    distance = np.linalg.norm(candidates[:, None, :] - avoid[None, :, :], axis=2)  # (c, k)
    return np.all(distance > radius[None, :], axis=1)


def space_filling_point(
    dim: int, avoid: np.ndarray, *, n_candidates: int = 1024, seed: int | Sequence[int] = 0
) -> np.ndarray:
    """The Sobol candidate farthest from all points in `avoid` (k, d) (maximin), (d,)."""
    candidates = sobol_points(dim, n_candidates, seed)  # (c, d)
    if avoid.shape[0] == 0:
        return candidates[0]
    distance = np.linalg.norm(candidates[:, None, :] - avoid[None, :, :], axis=2)  # (c, k)
    return candidates[np.argmax(distance.min(axis=1))]


def success_probability(
    points: np.ndarray,
    succeeded: np.ndarray,
    failed: np.ndarray,
    bandwidth: float = FAILURE_BANDWIDTH,
) -> np.ndarray:
    """The chance that a trial at each point runs to a result rather than failing, (p,).

    A kernel estimate with one prior success everywhere: (1 + S) / (1 + S + F), where S and F
    sum exp(−‖x − x_i‖² / 2h²) over the succeeded and failed points. Far from every failure
    it is 1; next to a lone failure 1/2; deep in a region of failures it goes to 0.

    Args:
        points: Unit points (p, d) to score.
        succeeded: Unit points (s, d) whose trials reported a finite result.
        failed: Unit points (f, d) whose trials failed or diverged.
        bandwidth: The kernel width h, in unit coordinates.
    """

    def kernel_sum(centres: np.ndarray) -> np.ndarray:
        if centres.shape[0] == 0:
            return np.zeros(points.shape[0])
        squared = np.sum((points[:, None, :] - centres[None, :, :]) ** 2, axis=2)  # (p, n)
        return np.exp(-squared / (2 * bandwidth**2)).sum(axis=1)

    successes = kernel_sum(succeeded)
    return (1.0 + successes) / (1.0 + successes + kernel_sum(failed))


def propose(
    gp: GPRegression,
    threshold: float,
    *,
    avoid: np.ndarray,
    avoid_radius: np.ndarray,
    failed: np.ndarray | None = None,
    acquisition: Acquisition = "sur",
    n_candidates: int = 2048,
    n_reference: int = 512,
    seed: int | Sequence[int] = 0,
) -> tuple[np.ndarray, float] | None:
    """The next point to evaluate, maximizing the acquisition over Sobol candidates.

    Args:
        gp: The surrogate, with pending points already fantasized.
        threshold: The level t.
        avoid: Unit points (k, d) no proposal may come close to (trials done, pending, failed).
        avoid_radius: Exclusion radius around each of them, (k,), unit coordinates.
        failed: Unit points (f, d) of failed trials. SUR then counts a reference point's
            misclassification, and a candidate's expected reduction, in proportion to their
            `success_probability`: a region where trials keep failing has no order parameter
            to map and stops drawing trials (the GP, which knows nothing there, would keep it
            uncertain forever).
        acquisition: "sur" (`misclassification_reduction`) or "straddle" (unweighted).
        n_candidates: Number of Sobol candidates.
        n_reference: Number of reference points (a Sobol prefix of the candidates) for SUR.
        seed: Seed of the scrambled Sobol candidates.

    Returns:
        The proposal in unit coordinates, (d,), and the share of the domain by which a trial
        there is expected to shrink the misclassified area (its SUR score over the reference
        points, times its success probability), whichever acquisition chose it; None when
        every candidate lies within the exclusion radius of a known point (nothing is left
        to try at this resolution).
    """
    candidates = sobol_points(gp.train_x.shape[1], n_candidates, seed)  # (c, d)
    candidates = candidates[_allowed(candidates, avoid, avoid_radius)]
    if candidates.shape[0] == 0:
        return None
    reference = candidates[:n_reference]  # (r, d)
    failed = np.empty((0, candidates.shape[1])) if failed is None else failed
    success = success_probability(candidates, gp.train_x, failed)  # (c,)
    weights = success[:n_reference]  # (r,)
    if acquisition == "straddle":
        mean, std = gp.predict(candidates)
        choice = np.argmax(straddle(mean, std, threshold))
        best = candidates[choice]
        reduction = misclassification_reduction(gp, best[None, :], reference, threshold, weights)
        gain = reduction[0] * success[choice]
    else:
        scores = misclassification_reduction(gp, candidates, reference, threshold, weights)
        scores = scores * success
        best, gain = candidates[np.argmax(scores)], np.max(scores)
    return best, float(gain) / reference.shape[0]
