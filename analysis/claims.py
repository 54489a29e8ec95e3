"""The paper's claims, tested on a study: verdicts from the trial table and the history.

The verdict functions (`check_*`, `evaluate_claims`, `limits`) are pure functions of the
trial table and the long history table of `analysis.loading` (`trial_id, epoch, metric,
value`), so they can be tested on synthetic tables. They read these columns:

* trial table: `trial_id`, `regime` (the final regime; None when the trial did not run to its
  end), `loss.beta`, `loss.name`, `normalization`, and the final `etf_distance`,
  `erank_means`, `rank_bound`, `dc_count` (`erank_ratio` is used when present, else
  erank_means / rank_bound); optionally `status`, `unit_norm`, `epochs_logged`, `seed`,
  `data.num_classes` and `mean_cos_means` (mean cosine between the final class means,
  `class_mean_cosines`);
* history: the `loss_hard` / `loss_plain` pair of every epoch (claim 1).

Each claim gets one of the verdicts `holds`, `partly holds`, `does not hold` (or `not
tested` when the study has no run that tests it), with a reason that gives the counts.

`write_claims_report` is the `hcl-study reproduce` report: the paper's figures 1-6 (one set
per loss when the study has both SCL and UCL), the phase diagram, the claims table and the
limits, as one self-contained HTML page, saved and logged on the study's parent run under
`claims/`. It reuses the pieces of `analysis.report`.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.boundary import PhaseBoundary
from analysis.figures import plot_phase_diagram
from analysis.report import (
    BOUNDARY_FILE,
    TRIALS_FILE,
    Report,
    _boundary_json,
    _png,
    phase_axes,
    phase_boundaries,
    render_html,
    study_figures,
    summary_lines,
)
from hcl_study.geometry import DIVERGED

HOLDS = "holds"
PARTLY = "partly holds"
DOES_NOT_HOLD = "does not hold"
NOT_TESTED = "not tested"
VERDICTS: tuple[str, ...] = (HOLDS, PARTLY, DOES_NOT_HOLD, NOT_TESTED)

NORMALIZED = ("ball", "sphere")
REL_TOL = 1e-6
"""Claim 1: loss_hard may fall below loss_plain by REL_TOL * max(1, |loss_plain|) (round-off)."""
ERANK_FRACTION = 0.8
"""Claim 3: erank_means / r below this counts as DC (the threshold of `classify_regime`)."""
LARGE_BETA = 10.0
"""Limits: UCL runs at β >= this are checked for a cone instead of NC."""
CONE_COSINE = 0.1
"""Limits: a mean cosine between class means above this (an ETF has -1/(C-1)) is a cone."""

ARTIFACT_PATH = "claims"
REPORT_FILE = "claims_report.html"
CLAIMS_FILE = "claims.json"
STATEMENTS: dict[int, str] = {
    1: "HSCL ≥ SCL and HUCL ≥ UCL: the hard-negative loss bounds the plain loss from above for "
    "the same representation, at every logged epoch of every run (equal at β = 0).",
    2: "With hard negatives (β > 0) and unit-ball or unit-sphere normalization, Adam reaches "
    "Neural Collapse (final regime NC).",
    3: "Without hard negatives (β = 0), the class means suffer Dimensional Collapse "
    "(final regime DC, collapsed directions, or a low effective rank).",
    4: "Without normalization, Neural Collapse is not reached.",
}

_LIMITS_FIXED = (
    "What this reproduction does not show: the paper's results are statements about the "
    "optima of the population losses, while the runs here show where Adam ends after a fixed "
    "budget of epochs, with one seed per setting; a run that ends 'partial' may still reach NC "
    "(or DC) later. The data are the paper's latent-class model (or scikit-learn's digits) "
    "with an MLP, not CIFAR-100 with a ResNet (see search_spaces/paper_cifar100.yaml for "
    "that scale). The regimes use this project's thresholds (classify_regime: etf_distance < "
    "0.15, within_rel < 0.15, equal_inner_max < 0.2 for NC; dc_count ≥ max(1, 0.1 r) or "
    "erank_means < 0.8 r for DC), not the paper's visual judgement. Claim 1 is checked on the "
    "epoch means of the exact (reweight) losses over the training batches, not on the "
    "population expectations of the theorems."
)


@dataclass(frozen=True)
class ClaimResult:
    """The verdict on one claim.

    Attributes:
        number: 1-4, as in `STATEMENTS`.
        statement: The claim.
        runs: Which runs test it, in words (with counts).
        trial_ids: Those runs.
        measured: The measured figures, in words.
        verdict: One of `VERDICTS`.
        reason: Why, with the counts.
        figures: The measured figures as numbers (for claims.json).
    """

    number: int
    statement: str
    runs: str
    trial_ids: tuple[str, ...]
    measured: str
    verdict: str
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def _verdict(passed: int, total: int) -> str:
    if total == 0:
        return NOT_TESTED
    if passed == total:
        return HOLDS
    return PARTLY if passed > 0 else DOES_NOT_HOLD


def _final(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that ran to their end with a finite geometry: a final regime, not `diverged`
    (non-finite features show neither NC nor DC, so a diverged run tests no claim on them)."""
    return trials[trials["regime"].notna() & (trials["regime"] != DIVERGED)]


def _not_final_note(trials: pd.DataFrame) -> str:
    """What `_final` leaves out of `trials`, counted by why."""
    diverged = int((trials["regime"] == DIVERGED).sum())
    unfinished = int(trials["regime"].isna().sum())
    return "".join(
        f"; {count} {what} left out"
        for count, what in (
            (diverged, "diverged run(s)"),
            (unfinished, "run(s) without a final regime (failed, killed or unfinished)"),
        )
        if count
    )


def _untested(chosen: pd.DataFrame, runs: str) -> str:
    """Why a claim was not tested: the study has no such run, or none ran to a finite end."""
    if chosen.empty:
        return f"the study has no run {runs}"
    return f"none of its {len(chosen)} runs {runs} has a final regime other than diverged"


def _erank_ratio(trials: pd.DataFrame) -> pd.Series:
    if "erank_ratio" in trials:
        return trials["erank_ratio"].astype(float)
    return trials["erank_means"].astype(float) / trials["rank_bound"].astype(float)


def _regime_counts(regimes: pd.Series) -> str:
    counts = regimes.value_counts()
    return ", ".join(f"{count} {regime}" for regime, count in counts.items()) or "none"


def _median(values: pd.Series) -> float:
    finite = pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
    return float(finite.median()) if len(finite) else float("nan")


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def _loss_names(trials: pd.DataFrame) -> list[str]:
    if "loss.name" not in trials:
        return []
    return sorted(trials["loss.name"].dropna().astype(str).unique())


def _by_loss(trials: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    names = _loss_names(trials)
    if not names:
        return [("all", trials)]
    return [(name, trials[trials["loss.name"] == name]) for name in names]


# ------------------------------------------------------------------ claim 1


def loss_pairs(history: pd.DataFrame) -> pd.DataFrame:
    """The `loss_hard` / `loss_plain` pair of every (trial, epoch) where either was logged.

    Returns:
        Columns trial_id, epoch, hard, plain (NaN where not logged) and complete (both were
        logged at that epoch).
    """
    columns = ["trial_id", "epoch", "hard", "plain", "complete"]
    rows = history[history["metric"].isin(("loss_hard", "loss_plain"))]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.drop_duplicates(["trial_id", "epoch", "metric"], keep="last")
    wide = rows.pivot(index=["trial_id", "epoch"], columns="metric", values="value")
    logged = rows.groupby(["trial_id", "epoch"])["metric"].nunique()  # (pairs,)
    wide["complete"] = logged.reindex(wide.index) == 2
    wide = wide.reset_index().rename(columns={"loss_hard": "hard", "loss_plain": "plain"})
    for column in ("hard", "plain"):
        if column not in wide:
            wide[column] = np.nan
    return wide[columns]


def check_loss_bound(
    trials: pd.DataFrame, history: pd.DataFrame, *, rel_tol: float = REL_TOL
) -> ClaimResult:
    """Claim 1: loss_hard ≥ loss_plain − tol at every epoch of every β > 0 run; equal at β = 0.

    Every trial with the pair logged is checked, whatever its status (a failed run's logged
    epochs count too). Left out, and counted: runs without a β (NaN `loss.beta`), epochs
    where only one of the two losses was logged (incomplete pairs), and epochs where either
    logged loss is not finite (a diverged epoch). The verdict is per run: holds when every
    run passes at every epoch, partly when some runs do, does not hold when none does.
    """
    pairs = loss_pairs(history)
    beta = trials.set_index("trial_id")["loss.beta"].astype(float)
    pairs = pairs[pairs["trial_id"].isin(beta.index)].copy()
    pairs["beta"] = pairs["trial_id"].map(beta)
    no_beta = pairs["beta"].isna()
    runs_without_beta = int(pairs.loc[no_beta, "trial_id"].nunique())
    pairs = pairs[~no_beta]
    complete = pairs["complete"].astype(bool)
    incomplete = int((~complete).sum())
    pairs = pairs[complete]
    finite = np.isfinite(pairs["hard"].astype(float)) & np.isfinite(pairs["plain"].astype(float))
    skipped = int((~finite).sum())
    pairs = pairs[finite]
    tol = rel_tol * np.maximum(1.0, pairs["plain"].abs())
    gap = pairs["hard"] - pairs["plain"]
    hard_runs = pairs["beta"] > 0
    pairs["ok"] = np.where(hard_runs, gap >= -tol, gap.abs() <= tol)
    pairs["gap"] = gap
    per_run = pairs.groupby("trial_id")["ok"].all()
    runs = list(per_run.index)
    failing = sorted(per_run.index[~per_run])
    violations = int((~pairs["ok"]).sum())
    positive = pairs[hard_runs]
    zero = pairs[~hard_runs]
    figures: dict[str, Any] = {
        "pairs_checked": len(pairs),
        "runs_checked": len(runs),
        "pairs_beta_positive": len(positive),
        "runs_beta_positive": int(positive["trial_id"].nunique()),
        "pairs_beta_zero": len(zero),
        "runs_beta_zero": int(zero["trial_id"].nunique()),
        "violations": violations,
        "runs_failing": len(failing),
        "skipped_non_finite": skipped,
        "incomplete_pairs": incomplete,
        "runs_without_beta": runs_without_beta,
        "min_gap_beta_positive": float(positive["gap"].min()) if len(positive) else None,
        "max_abs_gap_beta_zero": float(zero["gap"].abs().max()) if len(zero) else None,
        "rel_tol": rel_tol,
    }
    where = ""
    if len(positive):
        worst = positive.loc[positive["gap"].idxmin()]
        where = f" (run {worst['trial_id']}, epoch {int(worst['epoch'])})"
        figures["min_gap_at"] = {"trial_id": worst["trial_id"], "epoch": int(worst["epoch"])}
    measured = (
        f"{len(pairs)} (run, epoch) pairs in {len(runs)} runs: {len(positive)} with β > 0 "
        f"(min loss_hard − loss_plain = {_fmt(figures['min_gap_beta_positive'], 4)}{where}), "
        f"{len(zero)} with β = 0 (max |loss_hard − loss_plain| = "
        f"{_fmt(figures['max_abs_gap_beta_zero'], 3)})"
    )
    verdict = _verdict(len(runs) - len(failing), len(runs))
    notes = [
        f"{count} {what}"
        for count, what in (
            (skipped, "non-finite (diverged) epoch(s) skipped"),
            (incomplete, "epoch(s) with only one of the two losses logged skipped"),
            (runs_without_beta, "run(s) without loss.beta left out"),
        )
        if count
    ]
    if verdict == NOT_TESTED and skipped:
        reason = "every logged loss_hard / loss_plain pair is non-finite (diverged)"
    elif verdict == NOT_TESTED:
        reason = "no run logged the loss_hard / loss_plain pair"
    elif not failing:
        reason = (
            f"all {len(pairs)} (run, epoch) pairs of {len(runs)} runs satisfy the bound "
            f"(tolerance {rel_tol:g} relative)"
        )
    else:
        reason = (
            f"{violations} of {len(pairs)} (run, epoch) pairs violate it, in {len(failing)} of "
            f"{len(runs)} runs ({', '.join(failing[:5])}{', …' if len(failing) > 5 else ''})"
        )
    reason += "".join(f"; {note}" for note in notes)
    return ClaimResult(
        1,
        STATEMENTS[1],
        f"every run with the loss pair logged: {len(runs)} runs "
        f"({figures['runs_beta_positive']} with β > 0, {figures['runs_beta_zero']} with β = 0), "
        "every epoch",
        tuple(runs),
        measured,
        verdict,
        reason,
        figures,
    )


# ------------------------------------------------------------------ claim 2


def check_nc_with_hard_negatives(trials: pd.DataFrame) -> ClaimResult:
    """Claim 2: every run with β > 0 and ball or sphere normalization ends NC (per loss)."""
    chosen = trials[
        (trials["loss.beta"].astype(float) > 0) & trials["normalization"].isin(NORMALIZED)
    ]
    final = _final(chosen)
    parts, figures = [], {}
    for name, group in _by_loss(final) if len(final) else []:
        nc = int((group["regime"] == "NC").sum())
        others = group.loc[group["regime"] != "NC", "regime"]
        figures[name] = {
            "runs": len(group),
            "nc": nc,
            "regimes": group["regime"].value_counts().to_dict(),
            "median_etf_distance": _median(group["etf_distance"]),
            "median_erank_ratio": _median(_erank_ratio(group)),
            "verdict": _verdict(nc, len(group)),
        }
        detail = f" (others: {_regime_counts(others)})" if len(others) else ""
        parts.append(
            f"{name.upper()}: {nc}/{len(group)} end NC{detail}, median etf_distance "
            f"{_fmt(figures[name]['median_etf_distance'])}, median erank ratio "
            f"{_fmt(figures[name]['median_erank_ratio'])}"
        )
    total_nc = int((final["regime"] == "NC").sum())
    verdict = _verdict(total_nc, len(final))
    measured = "; ".join(parts) or "no such run"
    if verdict == NOT_TESTED:
        reason = _untested(chosen, "with β > 0 and ball or sphere normalization")
    else:
        reason = f"{total_nc} of {len(final)} runs end NC: {measured}"
    reason += _not_final_note(chosen)
    return ClaimResult(
        2,
        STATEMENTS[2],
        f"β > 0 with ball or sphere normalization: {len(final)} runs",
        tuple(final["trial_id"]),
        measured,
        verdict,
        reason,
        figures,
    )


# ------------------------------------------------------------------ claim 3


def check_dc_without_hard_negatives(
    trials: pd.DataFrame, *, erank_fraction: float = ERANK_FRACTION
) -> ClaimResult:
    """Claim 3: every β = 0 run shows DC: final regime DC, dc_count > 0 or erank ratio < 0.8."""
    chosen = trials[trials["loss.beta"].astype(float) == 0]
    final = _final(chosen)
    ratio = _erank_ratio(final)
    is_dc = final["regime"] == "DC"
    collapsed = final["dc_count"].astype(float) > 0
    low_rank = ratio < erank_fraction
    shows_dc = is_dc | collapsed | low_rank
    hard = _final(trials[trials["loss.beta"].astype(float) > 0])
    figures = {
        "runs": len(final),
        "shows_dc": int(shows_dc.sum()),
        "regime_dc": int(is_dc.sum()),
        "dc_count_positive": int(collapsed.sum()),
        "erank_ratio_low": int(low_rank.sum()),
        "regimes": final["regime"].value_counts().to_dict(),
        "median_erank_ratio": _median(ratio),
        "median_erank_ratio_beta_positive": _median(_erank_ratio(hard)),
        "median_dc_count": _median(final["dc_count"]),
    }
    measured = (
        f"regimes: {_regime_counts(final['regime'])}; median erank ratio "
        f"{_fmt(figures['median_erank_ratio'])} (β > 0: "
        f"{_fmt(figures['median_erank_ratio_beta_positive'])}), median dc_count "
        f"{_fmt(figures['median_dc_count'])}"
    )
    verdict = _verdict(int(shows_dc.sum()), len(final))
    if verdict == NOT_TESTED:
        reason = _untested(chosen, "with β = 0")
    else:
        reason = (
            f"{int(shows_dc.sum())} of {len(final)} β = 0 runs show DC (final regime DC: "
            f"{int(is_dc.sum())}, dc_count > 0: {int(collapsed.sum())}, erank ratio < "
            f"{erank_fraction:g}: {int(low_rank.sum())})"
        )
        spared = final.loc[~shows_dc]
        if len(spared):
            reason += f"; without DC: {_regime_counts(spared['regime'])}"
    reason += _not_final_note(chosen)
    return ClaimResult(
        3,
        STATEMENTS[3],
        f"β = 0 (every normalization): {len(final)} runs",
        tuple(final["trial_id"]),
        measured,
        verdict,
        reason,
        figures,
    )


# ------------------------------------------------------------------ claim 4


def check_no_nc_without_normalization(trials: pd.DataFrame) -> ClaimResult:
    """Claim 4: no run with normalization `none` ends NC (partly: some do; not: all do)."""
    chosen = trials[trials["normalization"] == "none"]
    final = _final(chosen)
    nc = final["regime"] == "NC"
    figures = {
        "runs": len(final),
        "nc": int(nc.sum()),
        "regimes": final["regime"].value_counts().to_dict(),
        "median_etf_distance": _median(final["etf_distance"]),
        "median_unit_norm": _median(final["unit_norm"]) if "unit_norm" in final else None,
    }
    norm = (
        f", median mean_c |‖μ_c‖ − 1| {_fmt(figures['median_unit_norm'])}"
        if figures["median_unit_norm"] is not None
        else ""
    )
    measured = (
        f"regimes: {_regime_counts(final['regime'])}; median etf_distance "
        f"{_fmt(figures['median_etf_distance'])}{norm}"
    )
    verdict = _verdict(int((~nc).sum()), len(final))
    if verdict == NOT_TESTED:
        reason = _untested(chosen, "with normalization 'none'")
    else:
        reason = f"{int(nc.sum())} of {len(final)} runs without normalization end NC"
        if nc.any():
            reason += f" ({', '.join(final.loc[nc, 'trial_id'].astype(str)[:5])})"
    reason += _not_final_note(chosen)
    return ClaimResult(
        4,
        STATEMENTS[4],
        f"normalization none (every β): {len(final)} runs",
        tuple(final["trial_id"]),
        measured,
        verdict,
        reason,
        figures,
    )


# ------------------------------------------------------------------ all claims


def evaluate_claims(trials: pd.DataFrame, history: pd.DataFrame) -> list[ClaimResult]:
    """The four claims of the paper, tested on a study's trial table and history."""
    return [
        check_loss_bound(trials, history),
        check_nc_with_hard_negatives(trials),
        check_dc_without_hard_negatives(trials),
        check_no_nc_without_normalization(trials),
    ]


def claims_table(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """One row per claim: claim, statement, runs, measured, verdict, reason."""
    return pd.DataFrame(
        [
            {
                "claim": result.number,
                "statement": result.statement,
                "runs": result.runs,
                "measured": result.measured,
                "verdict": result.verdict,
                "reason": result.reason,
            }
            for result in results
        ],
        columns=["claim", "statement", "runs", "measured", "verdict", "reason"],
    )


def limits(trials: pd.DataFrame, *, large_beta: float = LARGE_BETA) -> list[str]:
    """The "Limits" paragraphs: what the data show against the claims, then the fixed text."""
    paragraphs = []
    final = _final(trials)
    if "loss.name" in final:
        ucl = final[
            (final["loss.name"] == "ucl")
            & (final["loss.beta"].astype(float) >= large_beta)
            & final["normalization"].isin(NORMALIZED)
        ]
        if len(ucl):
            not_nc = ucl[ucl["regime"] != "NC"]
            ratios = _erank_ratio(ucl)
            cos = (
                ucl["mean_cos_means"].astype(float)
                if "mean_cos_means" in ucl
                else pd.Series(np.nan, index=ucl.index)
            )
            classes = (
                _median(ucl["data.num_classes"]) if "data.num_classes" in ucl else float("nan")
            )
            etf_cos = f" (an ETF has −1/(C−1) = {_fmt(-1 / (classes - 1))})" if classes > 1 else ""
            cone = ucl[cos > CONE_COSINE]
            measured = bool(cos.notna().any())
            cos_text = (
                f", median cos(μ_c, μ_c′) {_fmt(_median(cos))}{etf_cos}"
                if measured
                else ", cos(μ_c, μ_c′) not measured"
            )
            text = (
                f"HUCL at large β (β ≥ {large_beta:g}, ball or sphere): {len(ucl)} runs, "
                f"{_regime_counts(ucl['regime'])}; median erank ratio {_fmt(_median(ratios))}"
                f"{cos_text}. "
            )
            if len(cone):
                runs = "; ".join(
                    f"β={_fmt(row['loss.beta'])}, {row['normalization']}: {row['regime']}, "
                    f"cos {_fmt(cos[index])}, erank ratio {_fmt(ratios[index])}"
                    for index, row in cone.iterrows()
                )
                text += (
                    f"{len(cone)} of them merge classes into a cone (mean cosine between class "
                    f"means above {CONE_COSINE:g}) instead of reaching NC ({runs}). With large β "
                    "the hardness weights concentrate on the most similar samples, which without "
                    "labels are mostly of the anchor's own class, so little pushes different "
                    "classes apart: the paper's NC result for HUCL does not show up at that β here."
                )
            elif len(not_nc) and cos[not_nc.index].isna().all():
                text += f"{len(not_nc)} of them do not end NC; whether they form a cone is unknown."
            elif len(not_nc):
                unmeasured = int(cos[not_nc.index].isna().sum())
                unknown = f" ({unmeasured} of them not measured)" if unmeasured else ""
                text += f"{len(not_nc)} of them do not end NC, but none shows a cone here{unknown}."
            else:
                text += "All of them end NC here; no cone was seen."
            paragraphs.append(text)
    if "regime" in final and len(final):
        partial = final[final["regime"] == "partial"]
        epochs = _median(final["epochs_logged"]) if "epochs_logged" in final else float("nan")
        if len(partial):
            paragraphs.append(
                f"{len(partial)} of {len(final)} runs end 'partial' after "
                f"{_fmt(epochs, 4)} epochs: neither NC nor DC by the thresholds; the verdicts "
                "are about the last logged epoch, and more epochs might move them."
            )
    if "seed" in trials and trials["seed"].nunique() <= 1:
        paragraphs.append("Every setting was run with one seed: no run-to-run spread is measured.")
    paragraphs.append(_LIMITS_FIXED)
    return paragraphs


# ------------------------------------------------------------------ report


def class_mean_cosines(tracking_uri: str, trials: pd.DataFrame) -> pd.Series:
    """Mean cosine between the final class means of each trial (NaN without class_means.npy).

    Reads the last epoch of each finished or diverged trial's class_means.npy (C, d); the
    mean is over pairs c ≠ c′ of classes present (finite rows, non-zero norm).
    """
    from analysis.loading import FINAL_STATUSES
    from hcl_study.tracking import download_artifact

    values = pd.Series(np.nan, index=trials.index, dtype=float)
    with tempfile.TemporaryDirectory(prefix="hcl-claims-") as folder:
        for index, row in trials.iterrows():
            if row.get("status") not in FINAL_STATUSES:
                continue
            path = download_artifact(
                tracking_uri, row["run_id"], "class_means.npy", Path(folder) / str(row["trial_id"])
            )
            values[index] = mean_cosine(np.load(path)[-1])
    return values


def mean_cosine(class_means: np.ndarray) -> float:
    """Mean of cos(μ_c, μ_c′) over c ≠ c′ of (C, d) class means (finite, non-zero rows)."""
    means = np.asarray(class_means, dtype=float)  # (C, d)
    norms = np.linalg.norm(means, axis=1)  # (C,)
    kept = np.isfinite(means).all(axis=1) & (norms > 0)
    unit = means[kept] / norms[kept, None]  # (C', d)
    count = len(unit)
    if count < 2:
        return float("nan")
    gram = unit @ unit.T  # (C', C')
    return float((gram.sum() - np.trace(gram)) / (count * (count - 1)))


def claims_figures(
    data: Any, trials: pd.DataFrame
) -> tuple[dict[str, Any], list[PhaseBoundary], str]:
    """Figures 1-6 per loss (SCL and UCL apart) and one phase diagram of every trial.

    Returns:
        File name -> Figure, the boundary estimates (`phase_boundaries`) and why none was
        estimated ("" if some).
    """
    table, y, rows = phase_axes(trials)
    boundaries, boundary_error = phase_boundaries(table, y, rows, data.param_columns)
    figures: dict[str, Any] = {}
    groups = _by_loss(table)
    for name, group in groups:
        drawn = study_figures(data, group, [], x="loss.beta", y=y)
        drawn.pop("fig7_phase_diagram.png")
        for file_name, figure in drawn.items():
            if len(groups) > 1 or name != "all":
                figure.suptitle(f"{figure.get_suptitle()} — {name.upper()}")
                file_name = file_name.replace(".png", f"_{name}.png")
            figures[file_name] = figure
    figures["fig7_phase_diagram.png"] = plot_phase_diagram(
        table, boundaries, x="loss.beta", y=y, rows=rows
    )
    return figures, boundaries, boundary_error


def _claims_html(results: Sequence[ClaimResult], paragraphs: Sequence[str]) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td style="text-align:left">{html.escape(str(cell))}</td>'
            for cell in (result.number, result.statement, result.runs, result.measured)
        )
        + f'<td class="verdict" style="text-align:left"><b>{html.escape(result.verdict)}</b></td>'
        + f'<td style="text-align:left">{html.escape(result.reason)}</td></tr>'
        for result in results
    )
    limit_text = "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs)
    return (
        '<h2>Claims</h2>\n<table class="claims"><thead><tr><th>#</th><th>claim</th><th>runs</th>'
        "<th>measured</th><th>verdict</th><th>reason</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>\n<h2>Limits</h2>\n{limit_text}\n"
    )


def write_claims_report(
    tracking_uri: str, study_name: str, out_dir: Path | str, *, log_to_mlflow: bool = True
) -> Report:
    """Write the claims report of a study to `out_dir` and log it on its parent run.

    Files: `claims_report.html` (self-contained: figures as base64 PNG, the claims table,
    the limits, the regime counts and the trial table), `figN_*.png`, `claims.json`,
    `trials.csv` and `boundary.json`; logged under `claims/` on the parent run.

    Raises:
        UserError: No study of that name exists at `tracking_uri`.
        TrackingError: MLflow could not be reached or refused a call.
    """
    from analysis.loading import load_study_data, unfinished_note
    from analysis.order_parameters import add_order_parameters
    from hcl_study.tracking import StudyRun

    data = load_study_data(tracking_uri, study_name)
    trials = add_order_parameters(data.trials)
    trials["mean_cos_means"] = class_mean_cosines(tracking_uri, trials)
    results = evaluate_claims(trials, data.history)
    paragraphs = limits(trials)
    figures, boundaries, boundary_error = claims_figures(data, trials)
    pngs = {name: (figure.get_suptitle(), _png(figure)) for name, figure in figures.items()}
    page = render_html(data, trials, pngs, boundaries, boundary_error)
    claims_section = _claims_html(results, paragraphs)
    marker = "<h2>Regimes</h2>"
    page = (
        page.replace(marker, claims_section + marker, 1)
        if marker in page
        else page.replace("</body>", claims_section + "</body>", 1)
    )
    page = page.replace(
        f"<h1>Study {html.escape(data.name)}</h1>",
        f"<h1>Paper claims: study {html.escape(data.name)}</h1>",
        1,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (_, png) in pngs.items():
        (out / name).write_bytes(png)
    trials.to_csv(out / TRIALS_FILE, index=False)
    boundary = {"study_status": data.status, **_boundary_json(boundaries, boundary_error)}
    (out / BOUNDARY_FILE).write_text(json.dumps(boundary, indent=2, default=str))
    claims = {
        "study_status": data.status,
        "claims": [asdict(result) for result in results],
        "limits": paragraphs,
    }
    (out / CLAIMS_FILE).write_text(json.dumps(_plain(claims), indent=2, default=str))
    (out / REPORT_FILE).write_text(page, encoding="utf-8")
    files = [out / name for name in (REPORT_FILE, *pngs, CLAIMS_FILE, TRIALS_FILE, BOUNDARY_FILE)]
    summary = summary_lines(trials, boundaries, boundary_error)
    if not log_to_mlflow:
        return Report(out / REPORT_FILE, files, None, unfinished_note(data), summary)
    with tempfile.TemporaryDirectory(prefix="hcl-claims-report-") as staging:
        for path in files:
            shutil.copy2(path, staging)
        StudyRun(tracking_uri, study_name, data.experiment_id, data.parent_run_id).log_artifacts(
            Path(staging), ARTIFACT_PATH
        )
    return Report(out / REPORT_FILE, files, data.parent_run_id, unfinished_note(data), summary)


def _plain(value: Any) -> Any:
    """`value` as strict JSON: numpy scalars as Python ones, NaN and inf as None."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
