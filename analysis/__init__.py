"""Analysis of hcl-study studies: MLflow runs -> tables, order parameters, figures, report.

- `analysis.loading`: `load_study_data` (trial table + per-epoch history), singular values,
  `varied_params`, `unfinished_note` (why a study's results may still change).
- `analysis.order_parameters`: erank ratios, log ETF distance, DC fraction; regimes.
- `analysis.boundary`: the NC/DC phase boundary with its band.
- `analysis.figures`: the paper's figures 1-6 and the phase diagram.
- `analysis.report`: the self-contained HTML report, logged on the study's parent run.
- `analysis.hardness`: how much hardness weight a trained run puts on the anchor's own
  class (`hcl-study hardness`; imported on its own, as it loads the training code).
"""

from analysis.boundary import PhaseBoundary, estimate_level_set, estimate_phase_boundary
from analysis.figures import (
    plot_equal_inner_product,
    plot_metric_history,
    plot_ncm_accuracy,
    plot_phase_diagram,
    plot_singular_values,
    plot_unit_norm,
    plot_within_class,
    plot_zero_sum,
    trial_labels,
)
from analysis.loading import (
    StudyData,
    load_singular_values,
    load_study_data,
    study_tracking_uri,
    unfinished_note,
    varied_params,
)
from analysis.order_parameters import (
    ORDER_PARAMETERS,
    add_order_parameters,
    classify_regimes,
    singular_values_from_class_means,
    singular_values_from_spectrum,
)
from analysis.report import (
    Report,
    boundary_table,
    estimate_boundaries,
    read_boundary_estimates,
    write_report,
)

__all__ = [
    "ORDER_PARAMETERS",
    "PhaseBoundary",
    "Report",
    "StudyData",
    "add_order_parameters",
    "boundary_table",
    "classify_regimes",
    "estimate_boundaries",
    "estimate_level_set",
    "estimate_phase_boundary",
    "load_singular_values",
    "load_study_data",
    "plot_equal_inner_product",
    "plot_metric_history",
    "plot_ncm_accuracy",
    "plot_phase_diagram",
    "plot_singular_values",
    "plot_unit_norm",
    "plot_within_class",
    "plot_zero_sum",
    "read_boundary_estimates",
    "singular_values_from_class_means",
    "singular_values_from_spectrum",
    "study_tracking_uri",
    "trial_labels",
    "unfinished_note",
    "varied_params",
    "write_report",
]
