"""Synthetic phase functions with a known level set, for benchmarking boundary searches.

Each oracle is an order parameter over (β, τ), β ∈ [0, 50] on a log(β + 1) axis and
τ ∈ [0.1, 1]: about 1 in the NC phase (small β) and about 0 past a curved, not
axis-aligned boundary log(β + 1) = g(τ), observed with Gaussian noise.

An oracle is a family: `instance(seed)` shifts its boundary along log(β + 1) by a seeded
amount, so that a benchmark over seeds averages over where the boundary falls relative to a
fixed design such as a grid, not only over the noise. The benchmarks over such instances
share their command line (--quick, --jobs) from here too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from hcl_study.levelset import Axis, from_unit, unit_grid

BETA = Axis("loss.beta", 0.0, 50.0, log=True, offset=1.0)
TAU = Axis("loss.tau", 0.1, 1.0)
MAX_SHIFT = 0.3
"""Largest boundary shift of an instance, in log(β + 1) units (7.6 % of that axis)."""
SEEDS, QUICK_SEEDS = 10, 3  # instances a benchmark runs, without and with --quick


@dataclass(frozen=True)
class PhaseOracle:
    """An order parameter f(β, τ) = 1 − sigmoid((log(β + 1) − g(τ) − shift) / width) + noise.

    Attributes:
        name: Short name (the benchmark's --oracle).
        boundary: g(τ), the log(β + 1) at which f = 0.5.
        width: Sharpness of the transition, in log(β + 1) units.
        noise: Standard deviation of the observation noise.
        threshold: The level of the phase boundary.
        axes: The (β, τ) axes.
        shift: Added to g(τ); set per seed by `instance`.
    """

    name: str
    boundary: Callable[[np.ndarray], np.ndarray]
    width: float
    noise: float = 0.03
    threshold: float = 0.5
    axes: tuple[Axis, Axis] = (BETA, TAU)
    shift: float = 0.0

    def instance(self, seed: int) -> PhaseOracle:
        """This oracle with its boundary shifted by a seeded U(−MAX_SHIFT, MAX_SHIFT)."""
        shift = np.random.default_rng([seed, 101]).uniform(-MAX_SHIFT, MAX_SHIFT)
        return replace(self, shift=float(shift))

    def value(self, unit: np.ndarray) -> np.ndarray:
        """The noiseless order parameter at unit points (n, 2) -> (n,)."""
        natural = from_unit(self.axes, unit)  # (n, 2)
        log_beta = np.log(natural[:, 0] + BETA.offset)  # (n,)
        boundary = self.boundary(natural[:, 1]) + self.shift  # (n,)
        return 1.0 - 1.0 / (1.0 + np.exp(-(log_beta - boundary) / self.width))

    def observe(self, unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One noisy trial per unit point (n, 2) -> (n,)."""
        return self.value(unit) + self.noise * rng.normal(size=unit.shape[0])

    def true_region(self, resolution: int = 100) -> np.ndarray:
        """{f > threshold} on `unit_grid(2, resolution)`, (resolution, resolution)."""
        _, points = unit_grid(2, resolution)
        return (self.value(points) > self.threshold).reshape(resolution, resolution)


ORACLES = {
    "curved": PhaseOracle("curved", lambda tau: 0.6 + 4.2 * tau - 1.8 * tau**2, width=0.1),
    "wavy": PhaseOracle(
        "wavy", lambda tau: 1.9 + 1.3 * tau + 0.5 * np.sin(2 * np.pi * 1.5 * tau), width=0.1
    ),
}
NO_BOUNDARY = PhaseOracle("no_boundary", lambda tau: np.full_like(tau, -1.0), width=0.1)
"""DC everywhere: the order parameter stays below 1e-4 + noise, so {f > 0.5} is empty."""


def instances_parser(description: str) -> argparse.ArgumentParser:
    """The command line shared by benchmarks over seeded instances: --quick and --jobs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SEEDS} seeds, not {SEEDS}")
    parser.add_argument("--jobs", type=int, default=2, help="seeds run in parallel")
    return parser


def instance_seeds(args: argparse.Namespace) -> list[int]:
    """The seeds of the instances to run, by --quick."""
    return list(range(QUICK_SEEDS if args.quick else SEEDS))
