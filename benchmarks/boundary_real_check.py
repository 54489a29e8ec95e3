"""Real check of the boundary search: a 24-trial boundary study against a 64-trial dense grid.

Both studies train the same config (latent_class C = 50, sphere, SCL, 60 epochs) over
hardness β ∈ [0, 50] (log(β + 1) axis) and temperature τ ∈ [0.1, 1]:
- search_spaces/boundary_c50.yaml: `search: boundary`, 24 trials, 2 at a time;
- search_spaces/boundary_c50_grid.yaml: an 8 × 8 grid, 64 trials.

The reference is the level set erank_means/(C − 1) = 0.9 fitted (GP regression of
`hcl_study.levelset`, via `analysis.estimate_level_set`) on the 64 grid trials. Against it,
the symmetric-difference area (fraction of the unit-coordinate domain) of the region
{erank_ratio > 0.9} estimated from
- the boundary study's first n trials, n = 8 .. 24 (in the order they started);
- the 4 × 4 sub-grid (16 trials) and the 8 × 4 sub-grid (32 trials), each taking 4 of the
  8 values evenly spaced by index (the 1st, 3rd, 6th and 8th: both ends kept).

Writes boundary_real_check_phase.png (both boundaries on one phase diagram) and
boundary_real_check_error.png (error against trials) into docs/ (or --figures), and
benchmarks/results/boundary_real_check.json (or --output), and prints the figures.
Studies that do not exist yet under ROOT/studies/ are run first, there (about 15-20
minutes on 2 CPU cores for both); ROOT is the working directory unless --root says otherwise.

    .venv/bin/python benchmarks/boundary_real_check.py [--root DIR] [--output PATH]
        [--figures DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from results_file import write_results

from analysis import add_order_parameters, estimate_level_set, load_study_data, plot_phase_diagram
from analysis.loading import study_tracking_uri
from analysis.report import read_boundary_estimates
from hcl_study.errors import UserError
from hcl_study.levelset import symmetric_difference_fraction
from hcl_study.study.runner import STUDIES_DIR, run_study

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY_SPEC = ROOT / "search_spaces" / "boundary_c50.yaml"
GRID_SPEC = ROOT / "search_spaces" / "boundary_c50_grid.yaml"
ORDER_PARAMETER = "erank_ratio"
THRESHOLD = 0.9
X, Y = "loss.beta", "loss.tau"
X_RANGE, Y_RANGE = (0.0, 50.0), (0.1, 1.0)
RESOLUTION = 100
FIRST_FIT = 8  # the boundary study's initial design
FIGURES_DIR = ROOT / "docs"
RESULTS_PATH = ROOT / "benchmarks" / "results" / "boundary_real_check.json"
FIELDS = {
    "grid_trials": "finished trials of the dense grid study (boundary_c50_grid.yaml)",
    "boundary_trials": "finished trials of the boundary study (boundary_c50.yaml)",
    "reference_region_fraction": "share of the domain inside the dense grid's region "
    "{erank_ratio > 0.9}",
    "errors": "area (domain fraction) where an estimate disagrees with the dense grid's: the "
    "boundary study's first n trials (n -> error), and the 4 x 4 and 8 x 4 sub-grids",
    "boundary_search_final_error": "the same for all the boundary study's trials",
    "grid_regimes": "trials per regime in the dense grid",
    "boundary_regimes": "trials per regime in the boundary study",
}


def study_trials(spec: Path, root: Path) -> tuple[pd.DataFrame, list[dict]]:
    """The finished trials of a study under root/studies (run there first when missing)
    and its searcher estimates."""
    name = spec.stem
    studies_dir = root / STUDIES_DIR
    try:
        tracking_uri = study_tracking_uri(name, studies_dir)
    except UserError:
        with contextlib.chdir(root):  # studies live under the working directory
            run_study(spec)
        tracking_uri = study_tracking_uri(name, studies_dir)
    data = load_study_data(tracking_uri, name, metrics=["erank_means"])
    trials = add_order_parameters(data.trials)
    trials = trials[trials["status"] == "finished"].sort_values("started_at")
    return trials.reset_index(drop=True), read_boundary_estimates(data)


def region(trials: pd.DataFrame) -> np.ndarray:
    """{erank_ratio > 0.9} on the unit grid, from the GP level set fitted on `trials`."""
    (boundary,) = estimate_level_set(
        trials, ORDER_PARAMETER, THRESHOLD, X, Y, x_range=X_RANGE, y_range=Y_RANGE, by=[],
        resolution=RESOLUTION, min_trials=4,
    )  # fmt: skip
    if boundary.level_set is None:
        raise RuntimeError(f"no level set from {len(trials)} trials: {boundary.reason}")
    return boundary.level_set.region


def evenly_spaced(values: pd.Series, count: int) -> np.ndarray:
    """`count` of the sorted distinct `values`, evenly spaced by index, both ends included."""
    distinct = np.unique(values)  # sorted
    return distinct[np.linspace(0, len(distinct) - 1, count).round().astype(int)]


def sub_grid(grid: pd.DataFrame, beta_count: int, tau_count: int) -> pd.DataFrame:
    """The grid's trials at `beta_count` of its β and `tau_count` of its τ, evenly spaced
    with both ends kept."""
    betas, taus = evenly_spaced(grid[X], beta_count), evenly_spaced(grid[Y], tau_count)
    return grid[grid[X].isin(betas) & grid[Y].isin(taus)]


def draw_phase_diagram(grid: pd.DataFrame, search: pd.DataFrame, estimates: list[dict]) -> Figure:
    """Both studies on one phase diagram: grid points and level set, boundary-study trials."""
    (reference,) = estimate_level_set(
        grid, ORDER_PARAMETER, THRESHOLD, X, Y, x_range=X_RANGE, y_range=Y_RANGE, by=[],
    )  # fmt: skip
    figure = plot_phase_diagram(grid, [reference], x=X, y=Y, search_estimates=estimates)
    figure.set_size_inches(6.5, 5.0)
    axes = figure.axes[0]
    axes.scatter(
        search[X], search[Y], marker="x", color="black", zorder=4,
        label=f"boundary-study trials ({len(search)})",
    )  # fmt: skip
    axes.set_xscale("function", functions=(np.log1p, np.expm1))
    axes.set_xticks([0, 1, 2, 5, 10, 20, 50])
    axes.set_title(
        f"dense grid: {len(grid)} trials (dots, solid line)\n"
        f"boundary search: {len(search)} trials (crosses, dashed line)",
        fontsize="small",
    )
    axes.legend(fontsize="x-small", loc="lower left")
    figure.suptitle(f"Level set {ORDER_PARAMETER} = {THRESHOLD} (latent_class C = 50, sphere)")
    return figure


def draw_errors(errors: dict) -> Figure:
    """Disagreement with the dense-grid estimate against the number of trials."""
    figure = Figure(figsize=(6.0, 4.2), layout="constrained")
    axes = figure.subplots()
    counts = sorted(int(n) for n in errors["boundary_search"])
    axes.plot(
        counts, [100 * errors["boundary_search"][str(n)] for n in counts], "o-",
        label="boundary search, its first n trials",
    )  # fmt: skip
    for name, marker in (("grid_4x4", "s"), ("grid_8x4", "D")):
        axes.plot(
            [errors[name]["trials"]], [100 * errors[name]["error"]], marker, markersize=8,
            label=f"{name.replace('_', ' ')} (sub-grid of the dense grid)",
        )  # fmt: skip
    axes.axhline(5, color="gray", linestyle=":", label="5 % of the domain")
    axes.set_xlabel("trials")
    axes.set_ylabel("area where it disagrees with the 64-trial grid (%)")
    axes.legend(fontsize="x-small")
    figure.suptitle("Boundary estimate against the dense grid's")
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="the directory whose studies/ to use"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results path")
    parser.add_argument(
        "--figures", type=Path, default=FIGURES_DIR, help="directory for the two figures"
    )
    args = parser.parse_args()
    grid, _ = study_trials(GRID_SPEC, args.root.resolve())
    search, estimates = study_trials(BOUNDARY_SPEC, args.root.resolve())
    reference = region(grid)

    boundary_errors = {
        str(n): symmetric_difference_fraction(region(search.iloc[:n]), reference)
        for n in range(FIRST_FIT, len(search) + 1)
    }
    errors: dict = {"boundary_search": boundary_errors}
    for name, counts in (("grid_4x4", (4, 4)), ("grid_8x4", (8, 4))):
        trials = sub_grid(grid, *counts)
        errors[name] = {
            "trials": len(trials),
            "error": symmetric_difference_fraction(region(trials), reference),
        }
    figures = {
        "grid_trials": len(grid),
        "boundary_trials": len(search),
        "reference_region_fraction": float(reference.mean()),
        "errors": errors,
        "boundary_search_final_error": boundary_errors[str(len(search))],
        "grid_regimes": grid["regime"].value_counts().to_dict(),
        "boundary_regimes": search["regime"].value_counts().to_dict(),
    }
    args.figures.mkdir(parents=True, exist_ok=True)
    for name, figure in (
        ("phase", draw_phase_diagram(grid, search, estimates)),
        ("error", draw_errors(errors)),
    ):
        path = args.figures / f"boundary_real_check_{name}.png"
        figure.savefig(path, dpi=120)
        print(f"wrote {path}")
    print(json.dumps(figures, indent=2))
    write_results(args.output, __doc__.splitlines()[0], FIELDS, figures)


if __name__ == "__main__":
    main()
