"""Order parameters and regimes derived from small hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.order_parameters import (
    ORDER_PARAMETERS,
    add_order_parameters,
    classify_regimes,
    singular_values_from_class_means,
    singular_values_from_spectrum,
)
from hcl_study.geometry import classify_regime

GEOMETRY = {
    "erank_means": [7.5, 2.0, 8.6],
    "rank_bound": [9.0, 4.0, 9.0],
    "etf_distance": [0.01, 0.0, 0.05],
    "dc_count": [0.0, 2.0, 0.0],
    "num_classes_present": [10.0, 10.0, 10.0],
    "within_rel": [0.5, 0.5, 0.05],
    "equal_inner_max": [0.5, 0.5, 0.1],
}


def test_order_parameters_equal_hand_computations() -> None:
    table = pd.DataFrame(GEOMETRY | {"data.num_classes": pd.array([10, 5, None], dtype="Int64")})
    derived = add_order_parameters(table)
    assert set(ORDER_PARAMETERS) <= set(derived.columns)
    np.testing.assert_allclose(derived["erank_ratio"], [7.5 / 9, 0.5, 8.6 / 9])
    # C - 1 from data.num_classes where logged, else from num_classes_present.
    np.testing.assert_allclose(derived["erank_simplex_ratio"], [7.5 / 9, 0.5, 8.6 / 9])
    np.testing.assert_allclose(derived["log_etf_distance"], [-2.0, -12.0, np.log10(0.05)])
    np.testing.assert_allclose(derived["dc_fraction"], [0.0, 0.5, 0.0])
    assert "erank_ratio" not in table, "the input is not modified"


def test_erank_simplex_ratio_differs_when_features_are_narrower_than_c_minus_1() -> None:
    table = pd.DataFrame({key: values[:1] for key, values in GEOMETRY.items()})
    table["rank_bound"] = [3.0]  # d = 3 < C - 1 = 9
    table["erank_means"] = [3.0]
    table["dc_count"] = [1.0]
    derived = add_order_parameters(table)
    assert derived["erank_ratio"].iloc[0] == pytest.approx(1.0)
    assert derived["erank_simplex_ratio"].iloc[0] == pytest.approx(3.0 / 9.0)
    assert derived["dc_fraction"].iloc[0] == pytest.approx(1.0 / 3.0), "of the d directions"


def test_regimes_come_from_classify_regime() -> None:
    table = pd.DataFrame(GEOMETRY)
    table.loc[3] = np.nan  # a trial without metrics
    table.loc[4] = table.loc[0]
    table.loc[4, "etf_distance"] = np.nan  # a diverged trial
    regimes = classify_regimes(table)
    expected = [classify_regime(table.loc[index].to_dict()) for index in range(3)]
    assert regimes.tolist() == [*expected, None, "diverged"]
    assert set(expected) == {"partial", "DC", "NC"}, "the table covers the three regimes"


def test_singular_values_from_spectrum_are_square_roots() -> None:
    values = singular_values_from_spectrum(np.array([1.0, 0.25, 0.04, 0.0, np.nan]))
    np.testing.assert_allclose(values, [1.0, 0.5, 0.2, 0.0])


def test_singular_values_from_class_means() -> None:
    simplex = np.eye(4) - 0.25  # a simplex ETF of C = 4 means in d = 4
    np.testing.assert_allclose(singular_values_from_class_means(simplex), [1.0, 1.0, 1.0])
    collapsed = np.outer([1.0, 2.0, 3.0, 4.0], [1.0, 0.0, 0.0])  # rank 1 in d = 3
    np.testing.assert_allclose(
        singular_values_from_class_means(collapsed), [1.0, 0.0, 0.0], atol=1e-12
    )
    absent = np.vstack([simplex, np.full((1, 4), np.nan)])
    np.testing.assert_allclose(singular_values_from_class_means(absent), [1.0, 1.0, 1.0])


def test_a_table_without_metrics_gets_nan_order_parameters_and_no_regime() -> None:
    """A study whose trials all failed before their first epoch logged no metric at all."""
    table = pd.DataFrame({"trial_id": ["a", "b"], "loss.beta": [0.0, 5.0]})
    with_order = add_order_parameters(table)
    assert with_order[list(ORDER_PARAMETERS)].isna().all().all()
    assert classify_regimes(table).isna().all()


def test_negative_round_off_in_the_spectrum_is_a_zero_singular_value() -> None:
    np.testing.assert_allclose(singular_values_from_spectrum(np.array([1.0, -1e-12])), [1.0, 0.0])


def test_class_means_are_centred_before_their_singular_values() -> None:
    means = np.eye(3) + 5.0  # a simplex of 3 points far from the origin: two equal values
    np.testing.assert_allclose(singular_values_from_class_means(means), [1.0, 1.0])


def test_a_diverged_epoch_of_class_means_has_no_singular_values() -> None:
    """No finite class mean (a diverged epoch) gives no values, not an IndexError."""
    assert singular_values_from_class_means(np.full((10, 9), np.nan)).shape == (0,)
    one_finite = np.full((10, 9), np.nan)
    one_finite[0] = 1.0
    assert singular_values_from_class_means(one_finite).shape == (0,)
