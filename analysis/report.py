"""The study report: one self-contained HTML page with its PNGs and tables, logged to MLflow.

`write_report` reads a study, estimates its phase boundary, draws figures 1-7 and writes to
the output folder:

* `report.html`: the figures embedded as base64 PNG, the regime counts, the boundary estimate
  with its status, reason and the varied params it pools over, and the trial table (ids,
  varied params, order parameters);
* `figN_*.png`: each figure;
* `trials.csv`: the whole trial table; `boundary.json`: the boundary estimates.

The same files are logged under `report/` on the study's parent run.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.boundary import PhaseBoundary, estimate_phase_boundary
from analysis.figures import (
    DPI,
    plot_equal_inner_product,
    plot_ncm_accuracy,
    plot_phase_diagram,
    plot_singular_values,
    plot_unit_norm,
    plot_within_class,
    plot_zero_sum,
    trial_labels,
)
from analysis.loading import (
    ID_COLUMNS,
    StudyData,
    load_singular_values,
    load_study_data,
    unfinished_note,
    varied_params,
)
from analysis.order_parameters import ORDER_PARAMETERS, add_order_parameters
from hcl_study.tracking import (
    BOUNDARY_SEARCH_ARTIFACT,
    StudyRun,
    read_json_artifact,
    redacted_uri,
)

REPORT_FILE = "report.html"
TRIALS_FILE = "trials.csv"
BOUNDARY_FILE = "boundary.json"
ARTIFACT_PATH = "report"
TABLE_METRICS: tuple[str, ...] = (*ORDER_PARAMETERS, "ncm_accuracy_test", "loss")
"""Metric columns of the report's trial table (all are in trials.csv)."""

CATEGORY_AXES: dict[str, tuple[str, dict[str, float]]] = {
    "normalization": (
        "normalization (0 none, 1 ball, 2 sphere)",
        {"none": 0.0, "ball": 1.0, "sphere": 2.0},
    ),
    "loss.name": ("loss (0 scl, 1 ucl)", {"scl": 0.0, "ucl": 1.0}),
}
"""Categorical columns drawn as the phase diagram's y axis: column -> (axis name, codes)."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f3f3f3; }
figure { margin: 1em 0 2em; }
img { max-width: 100%; }
.reason { color: #a33; }
"""


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote.

    Attributes:
        path: The HTML report.
        files: Every file written (the report, the PNGs, the CSV and the JSON).
        parent_run_id: The parent run the files were logged to (under `report/`); None when
            they were not logged.
        unfinished: Why the study's results may still change (`unfinished_note`), or "".
        summary: What the report found, a line each (`summary_lines`): trials by status and
            final regime, then each boundary estimate.
    """

    path: Path
    files: list[Path]
    parent_run_id: str | None
    unfinished: str = ""
    summary: tuple[str, ...] = ()


def estimate_boundaries(
    trials: pd.DataFrame,
    x: str = "loss.beta",
    y: str | None = "loss.tau",
    *,
    params: Sequence[str] | None = None,
) -> tuple[list[PhaseBoundary], str]:
    """The P(NC) = 1/2 boundaries, or none and the reason when the table cannot have one.

    Args:
        trials: The trial table with order parameters.
        x: Horizontal axis.
        y: Vertical axis; None for 1-D boundaries in x.
        params: The study's param columns, to name those each boundary pools over.

    Returns:
        The boundaries (one per category, each with its own status and reason), and "" or why
        none was estimated (e.g. a missing column, or an axis that takes a single value).
    """
    try:
        return estimate_phase_boundary(trials, x, y, params=params), ""
    except (KeyError, ValueError) as error:
        return [], f"no boundary estimated: {error}"


def _varies(trials: pd.DataFrame, column: str) -> bool:
    return column in trials and trials[column].nunique() > 1


def phase_axes(trials: pd.DataFrame) -> tuple[pd.DataFrame, str, str | None]:
    """The phase diagram's y axis, and the categorical column it codes (None: y is τ).

    β is the x axis. When τ varies, y is τ, and each (normalization, loss) gets a 2-D
    boundary in (β, τ). Else y is a categorical column coded as numbers, one row per value:
    normalization coded 0/1/2 when it varies (the CPU grids; one panel per loss), else the
    loss coded 0/1 (the CIFAR-100 spec, all ball; one panel). A category is never
    interpolated: each (normalization, loss) then gets a 1-D boundary in β on its row. Other
    varied params are pooled, and each boundary names them (`PhaseBoundary.pooled`).

    Returns:
        The table with the coded column added, the y column, and the categorical column
        that y codes (None when y is τ).
    """
    present = [column for column in CATEGORY_AXES if column in trials]
    if _varies(trials, "loss.tau") or not present:
        return trials, "loss.tau", None
    column = next((column for column in present if _varies(trials, column)), present[0])
    name, codes = CATEGORY_AXES[column]
    table = trials.copy()
    table[name] = table[column].map(codes).astype(float)
    return table, name, column


def phase_boundaries(
    table: pd.DataFrame, y: str, rows: str | None, params: Sequence[str]
) -> tuple[list[PhaseBoundary], str]:
    """The P(NC) = 1/2 boundaries on the axes of `phase_axes`, one per normalization and loss
    (the default `by` of `estimate_phase_boundary`).

    Args:
        table: The table `phase_axes` returned.
        y: Its y column.
        rows: The categorical column y codes: 1-D boundaries in β; None: 2-D in (β, y).
        params: The study's param columns (the boundaries name those they pool over).

    Returns:
        The boundaries, and "" or why none was estimated.
    """
    return estimate_boundaries(table, "loss.beta", None if rows else y, params=params)


def read_boundary_estimates(data: StudyData) -> list[dict[str, Any]]:
    """The boundary searcher's own estimates, when the study was a boundary search."""
    logged = read_json_artifact(data.tracking_uri, data.parent_run_id, BOUNDARY_SEARCH_ARTIFACT)
    return list(logged["estimates"]) if logged else []


def study_figures(
    data: StudyData,
    trials: pd.DataFrame,
    boundaries: list[PhaseBoundary],
    *,
    x: str = "loss.beta",
    y: str = "loss.tau",
    rows: str | None = None,
) -> dict[str, Figure]:
    """Figures 1-7 of a study, keyed by their PNG file name.

    Args:
        data: The study (its history and tracking URI are used).
        trials: The trial table with order parameters; lines are ordered by `x`.
        boundaries: The boundary estimates for the phase diagram.
        x: Horizontal axis of the phase diagram (and the ordering of the lines).
        y: Vertical axis of the phase diagram.
        rows: The categorical column that `y` codes (`phase_axes`), or None.
    """
    ordered = trials.sort_values(x) if x in trials else trials
    labels = trial_labels(ordered, varied_params(ordered, data.param_columns))
    singular_values = load_singular_values(data.tracking_uri, ordered)
    history = data.history
    return {
        "fig1_singular_values.png": plot_singular_values(singular_values, labels=labels),
        "fig2_unit_norm.png": plot_unit_norm(history, labels),
        "fig3_zero_sum.png": plot_zero_sum(history, labels),
        "fig4_equal_inner_product.png": plot_equal_inner_product(history, labels),
        "fig5_within_class.png": plot_within_class(history, labels),
        "fig6_ncm_accuracy.png": plot_ncm_accuracy(history, labels),
        "fig7_phase_diagram.png": plot_phase_diagram(
            trials,
            boundaries,
            x=x,
            y=y,
            rows=rows,
            search_estimates=read_boundary_estimates(data),
        ),
    }


def _png(figure: Figure) -> bytes:
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="–", float_format=lambda value: f"{value:.4g}")


BOUNDARY_COLUMNS = [
    "category",
    "quantity",
    "level",
    "status",
    "reason",
    "pooled over",
    "trials",
    "band area",
    "expected error",
]


def _pooled_text(pooled: tuple[str, ...] | None) -> str:
    if pooled is None:
        return "not checked"
    return ", ".join(pooled) or "nothing"


def boundary_table(boundaries: list[PhaseBoundary]) -> pd.DataFrame:
    """One row per boundary estimate: category, status and reason, what it pools over,
    trials, band area and expected error (the report's table)."""
    return pd.DataFrame(
        [
            {
                "category": b.category_label,
                "quantity": b.quantity,
                "level": b.level,
                "status": b.status,
                "reason": b.reason,
                "pooled over": _pooled_text(b.pooled),
                "trials": len(b.points),
                "band area": float(np.mean(b.level_set.band)) if b.level_set else np.nan,
                "expected error": b.level_set.expected_error if b.level_set else np.nan,
            }
            for b in boundaries
        ],
        columns=BOUNDARY_COLUMNS,
    )


def _counts_text(counts: pd.Series) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.sort_index().items())


def summary_lines(
    trials: pd.DataFrame, boundaries: list[PhaseBoundary], boundary_error: str
) -> tuple[str, ...]:
    """A line for the trials (by status and final regime) and one per boundary estimate,
    e.g. "boundary P(NC) = 0.5, normalization=ball: placed from 8 trials; uncertainty band
    12% of the domain, expected error 2.5%, pooled over optimizer.lr"."""
    regimes = trials["regime"].dropna()
    lines = [
        f"{len(trials)} trials: {_counts_text(trials['status'].value_counts()) or 'none'}; "
        f"final regime {_counts_text(regimes.value_counts()) or 'none'}"
    ]
    if boundary_error:
        return (*lines, boundary_error)
    for b in boundaries:
        if not b.ok or b.level_set is None:
            found = f"no boundary: {b.reason}"
        else:
            band = float(np.mean(b.level_set.band))
            found = (
                f"placed from {len(b.points)} trials; uncertainty band {band:.0%} of the domain, "
                f"expected error {b.level_set.expected_error:.1%}"
            )
            if b.pooled:
                found += f", pooled over {', '.join(b.pooled)}"
        lines.append(f"boundary {b.quantity} = {b.level:g}, {b.category_label}: {found}")
    return tuple(lines)


def render_html(
    data: StudyData,
    trials: pd.DataFrame,
    pngs: dict[str, tuple[str, bytes]],
    boundaries: list[PhaseBoundary],
    boundary_error: str,
) -> str:
    """The self-contained report page.

    Args:
        data: The study.
        trials: The trial table with order parameters.
        pngs: File name -> (figure title, PNG bytes), in display order.
        boundaries: The boundary estimates.
        boundary_error: Why no boundary was estimated, or "".
    """
    counts = pd.crosstab(trials["status"], trials["regime"].fillna("no final regime"))
    columns = [
        *ID_COLUMNS,
        *varied_params(data.trials, data.param_columns),
        *[m for m in TABLE_METRICS if m in trials],
    ]
    error = f'<p class="reason">{html.escape(boundary_error)}</p>' if boundary_error else ""
    note = unfinished_note(data)
    unfinished = f'<p class="reason"><b>{html.escape(note)}</b></p>' if note else ""
    definitions = "".join(
        f"<li><code>{html.escape(name)}</code>: {html.escape(text)}</li>"
        for name, text in ORDER_PARAMETERS.items()
    )
    figures = "".join(
        f'<figure><h3>{html.escape(title)}</h3><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'
        for title, png in pngs.values()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Study {html.escape(data.name)}</title><style>{_STYLE}</style></head><body>
<h1>Study {html.escape(data.name)}</h1>
<p>{len(trials)} trials · MLflow {html.escape(redacted_uri(data.tracking_uri))} · experiment
{html.escape(data.experiment_id)} · parent run {html.escape(data.parent_run_id)}</p>
{unfinished}
<h2>Regimes</h2>
<p>Trials by status and final regime. A regime is final only when the trial ran to its end
(finished or diverged); failed, killed and stopped trials have "no final regime".</p>
{counts.to_html()}
<h2>Phase boundary</h2>
{error}{_table_html(boundary_table(boundaries))}
<h2>Figures</h2>
{figures}
<h2>Trials</h2>
<p>Order parameters:</p><ul>{definitions}</ul>
{_table_html(trials[columns])}
</body></html>
"""


def _boundary_json(boundaries: list[PhaseBoundary], boundary_error: str) -> dict[str, Any]:
    return {
        "error": boundary_error,
        "boundaries": [
            {
                "category": b.category,
                "axes": list(b.axes),
                "pooled": None if b.pooled is None else list(b.pooled),
                "quantity": b.quantity,
                "level": b.level,
                "status": b.status,
                "reason": b.reason,
                "level_set": b.level_set.to_dict() if b.level_set else None,
            }
            for b in boundaries
        ],
    }


def write_report(
    tracking_uri: str,
    study_name: str,
    out_dir: Path | str,
    *,
    x: str = "loss.beta",
    y: str = "loss.tau",
    log_to_mlflow: bool = True,
) -> Report:
    """Write the study's report to `out_dir` and log it on the study's parent run.

    Args:
        tracking_uri: Where the study lives.
        study_name: The study (experiment) name.
        out_dir: The report folder (created; files of the same names are replaced).
        x: Horizontal axis of the phase boundary.
        y: Vertical axis of the phase boundary. With the default axes (β, τ) and a τ that
            does not vary, y codes a category instead (`phase_axes`), and each category
            gets a 1-D boundary in β.
        log_to_mlflow: Also log the files under `report/` on the parent run.

    Raises:
        UserError: No study of that name exists at `tracking_uri`.
        TrackingError: MLflow could not be reached or refused a call.
    """
    data = load_study_data(tracking_uri, study_name)
    trials = add_order_parameters(data.trials)
    table, rows = trials, None
    if (x, y) == ("loss.beta", "loss.tau"):  # the default axes: as `phase_axes` chooses
        table, y, rows = phase_axes(trials)
        boundaries, boundary_error = phase_boundaries(table, y, rows, data.param_columns)
    else:
        boundaries, boundary_error = estimate_boundaries(trials, x, y, params=data.param_columns)
    figures = study_figures(data, table, boundaries, x=x, y=y, rows=rows)
    pngs = {name: (figure.get_suptitle(), _png(figure)) for name, figure in figures.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (_, png) in pngs.items():
        (out / name).write_bytes(png)
    trials.to_csv(out / TRIALS_FILE, index=False)
    boundary = {"study_status": data.status, **_boundary_json(boundaries, boundary_error)}
    (out / BOUNDARY_FILE).write_text(json.dumps(boundary, indent=2, default=str))
    page = render_html(data, trials, pngs, boundaries, boundary_error)
    (out / REPORT_FILE).write_text(page, encoding="utf-8")
    files = [out / name for name in (REPORT_FILE, *pngs, TRIALS_FILE, BOUNDARY_FILE)]
    summary = summary_lines(trials, boundaries, boundary_error)
    if not log_to_mlflow:
        return Report(out / REPORT_FILE, files, None, unfinished_note(data), summary)
    with tempfile.TemporaryDirectory(prefix="hcl-report-") as staging:
        for path in files:  # only our files, whatever else `out_dir` holds
            shutil.copy2(path, staging)
        study_run = StudyRun(tracking_uri, study_name, data.experiment_id, data.parent_run_id)
        study_run.log_artifacts(Path(staging), ARTIFACT_PATH)
    return Report(out / REPORT_FILE, files, data.parent_run_id, unfinished_note(data), summary)
