"""Loading a real smoke study (one failed trial) from an MLflow server and its SQLite store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from smoke_study import SmokeStudy
from study_checks import LOGGED_METRICS

from analysis.loading import (
    StudyData,
    load_singular_values,
    load_study_data,
    parse_param,
    study_tracking_uri,
    typed_params,
    unfinished_note,
    varied_params,
)
from hcl_study.errors import UserError
from hcl_study.geometry import REGIME_CODES
from hcl_study.tracking import (
    BULK_HISTORY_MAX_POINTS,
    REGIMES,
    StudyRun,
    TrialRun,
    metric_histories,
    metric_history,
)


@pytest.fixture(scope="module")
def study(smoke_study: SmokeStudy) -> StudyData:
    return load_study_data(smoke_study.tracking_uri, smoke_study.name)


def test_every_trial_has_a_row_and_the_failed_one_is_labelled(
    study: StudyData, smoke_study: SmokeStudy
) -> None:
    trials = study.trials
    assert len(trials) == smoke_study.num_trials
    assert Counter(trials["status"]) == {"finished": smoke_study.num_trials - 1, "failed": 1}
    failed = trials[trials["status"] == "failed"].iloc[0]
    assert failed["mlflow_status"] == "FAILED"
    assert pd.isna(failed["regime"]), "a failed trial has no final regime"
    assert failed["last_regime"] in REGIMES
    assert failed["epochs_logged"] == smoke_study.fault_epoch
    assert failed["error"] == (
        f"hcl_study.faults.InjectedFault: injected fault before epoch {smoke_study.fault_epoch} "
        f"of trial {failed['trial_id']}"
    )
    finished = trials[trials["status"] == "finished"]
    assert (finished["error"] == "").all()
    assert set(finished["regime"]) <= {"NC", "partial", "DC"}
    assert (finished["regime"] == finished["last_regime"]).all()
    assert (finished["epochs_logged"] == smoke_study.epochs).all()
    assert trials["trial_id"].is_unique and trials["run_id"].is_unique


def test_started_at_is_each_runs_creation_time(study: StudyData, smoke_study: SmokeStudy) -> None:
    client = MlflowClient(smoke_study.tracking_uri)
    for _, row in study.trials.iterrows():
        started_ms = client.get_run(row["run_id"]).info.start_time
        assert row["started_at"] == pd.Timestamp(started_ms, unit="ms", tz="UTC")


def test_params_and_metrics_are_typed(study: StudyData) -> None:
    trials = study.trials
    assert trials["loss.beta"].dtype == np.float64
    assert trials["optimizer.lr"].dtype == np.float64
    assert trials["epochs"].dtype == np.int64 and (trials["epochs"] == 3).all()
    assert trials["data.num_classes"].dtype == np.int64
    assert trials["loss.self_positive"].dtype == bool
    assert pd.api.types.is_string_dtype(trials["normalization"])
    assert set(trials["normalization"]) <= {"none", "ball", "sphere"}
    assert trials["model.feature_dim"].isna().all(), "'None' is read as missing"
    assert {"loss.beta", "normalization", "epochs"} <= set(study.param_columns)
    for metric in LOGGED_METRICS:
        assert trials[metric].dtype == np.float64, metric
        assert trials[metric].notna().all(), metric


def test_history_has_every_logged_epoch(study: StudyData, smoke_study: SmokeStudy) -> None:
    history = study.history
    assert list(history.columns) == ["trial_id", "epoch", "metric", "value"]
    assert set(LOGGED_METRICS) <= set(history["metric"])
    statuses = dict(zip(study.trials["trial_id"], study.trials["status"], strict=True))
    epochs = history.groupby(["trial_id", "metric"])["epoch"].apply(list)
    for (trial_id, metric), logged in epochs.items():
        expected = smoke_study.fault_epoch if statuses[trial_id] == "failed" else smoke_study.epochs
        assert logged == list(range(expected)), (trial_id, metric)


def test_bulk_history_matches_per_metric_reads(study: StudyData, smoke_study: SmokeStudy) -> None:
    trial = study.trials.iloc[-1]
    rows = study.history[
        (study.history["trial_id"] == trial["trial_id"]) & (study.history["metric"] == "loss")
    ]
    expected = metric_history(smoke_study.tracking_uri, trial["run_id"], "loss")
    assert list(zip(rows["epoch"], rows["value"], strict=True)) == expected


def test_server_and_sqlite_store_give_the_same_tables(
    study: StudyData, smoke_study: SmokeStudy
) -> None:
    direct = load_study_data(smoke_study.sqlite_uri, smoke_study.name)
    pd.testing.assert_frame_equal(direct.trials, study.trials)
    pd.testing.assert_frame_equal(direct.history, study.history)


def test_singular_values_from_both_artifacts_agree(
    study: StudyData, smoke_study: SmokeStudy
) -> None:
    from_spectrum = load_singular_values(smoke_study.tracking_uri, study.trials)
    from_means = load_singular_values(smoke_study.tracking_uri, study.trials, source="class_means")
    finished = study.trials.loc[study.trials["status"] == "finished", "trial_id"]
    assert list(from_spectrum) == list(finished), "the failed trial has no artifacts"
    for trial_id, values in from_spectrum.items():
        assert values.shape == (9,)  # min(d, C - 1) with d = C - 1 = 9
        assert values[0] == pytest.approx(1.0)
        np.testing.assert_allclose(values, from_means[trial_id], rtol=1e-3, atol=1e-5)
    first_epoch = load_singular_values(smoke_study.tracking_uri, study.trials, epoch=0)
    assert not np.allclose(first_epoch[finished.iloc[0]], from_spectrum[finished.iloc[0]])


def test_unknown_study_names_the_study_and_the_uri(smoke_study: SmokeStudy, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"'no-such-study'.*{smoke_study.tracking_uri}"):
        load_study_data(smoke_study.tracking_uri, "no-such-study")
    missing = tmp_path / "mlflow.db"
    with pytest.raises(UserError, match="no-such-study"):
        load_study_data(f"sqlite:///{missing}", "no-such-study")
    assert not missing.exists(), "reading must not create a store"


def test_study_tracking_uri_prefers_study_json(
    smoke_study: SmokeStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    studies = smoke_study.root / "studies"
    assert study_tracking_uri(smoke_study.name, studies) == smoke_study.tracking_uri
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "mlflow.db").touch()
    local = study_tracking_uri("local", tmp_path)
    assert local == f"sqlite:///{(tmp_path / 'local' / 'mlflow.db').resolve()}"
    with pytest.raises(UserError, match="'absent'.*sqlite:///"):
        study_tracking_uri("absent", tmp_path)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert study_tracking_uri(smoke_study.name, studies) == smoke_study.tracking_uri
    assert study_tracking_uri("local", tmp_path) == "http://mlflow.internal:5000"
    assert study_tracking_uri("absent", tmp_path) == "http://mlflow.internal:5000"


@pytest.mark.parametrize(
    ("text", "value"),
    [("None", None), ("True", True), ("False", False), ("3", 3), ("0.5", 0.5),
     ("1e-3", 1e-3), ("sphere", "sphere")],
)  # fmt: skip
def test_parse_param(text: str, value: object) -> None:
    parsed = parse_param(text)
    assert parsed == value and type(parsed) is type(value)


def test_typed_params_with_missing_values() -> None:
    table = typed_params(
        [
            {"a": "1", "b": "True", "c": "0.5", "d": "x", "e": "None"},
            {"a": "None", "b": "None", "c": "2", "d": "None", "e": "None"},
        ]
    )
    assert str(table["a"].dtype) == "Int64" and table["a"].isna().tolist() == [False, True]
    assert str(table["b"].dtype) == "boolean"
    assert table["c"].dtype == np.float64 and table["c"].tolist() == [0.5, 2.0]
    assert table["d"].iloc[0] == "x" and pd.isna(table["d"].iloc[1])
    assert table["e"].dtype == np.float64 and table["e"].isna().all()


def test_bulk_history_reads_past_the_servers_sampling_cap(mlflow_server: Any) -> None:
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.create_experiment("long-history")
    run_id = client.create_run(experiment_id).info.run_id
    steps = BULK_HISTORY_MAX_POINTS + 100
    metrics = [Metric("m", float(step), 0, step) for step in range(steps)]
    for start in range(0, steps, 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    client.log_batch(run_id, metrics=[Metric("short", 1.0, 0, 0)])
    points = metric_histories(mlflow_server.uri, {run_id: ["m", "short"]})
    assert [(key, step, value) for _, key, step, value in points] == [
        *(("m", step, float(step)) for step in range(steps)),
        ("short", 0, 1.0),
    ]


def hand_built_study(tmp_path: Path, name: str) -> StudyRun:
    """A study in a SQLite store of its own, written as the trainable writes it."""
    return StudyRun.start_or_resume(
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        name,
        {"name": name},
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )


def nested_run(study: StudyRun, tags: dict[str, str]) -> str:
    """A run under the study's parent that hcl-study did not make, e.g. from a notebook."""
    client = MlflowClient(study.tracking_uri)
    tags = {"mlflow.parentRunId": study.run_id, **tags}
    run_id = client.create_run(study.experiment_id, tags=tags).info.run_id
    client.log_metric(run_id, "loss", 3.0, step=0)
    client.set_terminated(run_id)
    return run_id


def test_only_trial_runs_are_trials_and_epochs_logged_counts_epochs(tmp_path: Path) -> None:
    """A nested run without `hcl.role=trial` is no trial; a trial that logged epochs 0, 1, 2
    and 5 (its server lost 3 and 4) logged 4 epochs, not 6."""
    study = hand_built_study(tmp_path, "hand")
    trial = TrialRun.open(
        study.tracking_uri, study.experiment_id, study.run_id, "t0", {"loss": {"beta": 1.0}}, "hand"
    )
    for epoch in (0, 1, 2, 5):
        trial.log_epoch(epoch, {"loss": 1.0 / (epoch + 1)})
    trial.finish("failed")
    nested_run(study, {"mlflow.runName": "notes"})
    study.finish()

    data = load_study_data(study.tracking_uri, "hand")
    assert data.trials["trial_id"].tolist() == ["t0"]
    assert data.trials["epochs_logged"].tolist() == [4]
    assert data.history["epoch"].tolist() == [0, 1, 2, 5]


def test_two_runs_of_one_trial_are_refused(tmp_path: Path) -> None:
    """Their histories would be merged under one trial id: a clear error instead."""
    study = hand_built_study(tmp_path, "twice")
    first = TrialRun.open(
        study.tracking_uri,
        study.experiment_id,
        study.run_id,
        "t0",
        {"loss": {"beta": 1.0}},
        "twice",
    )
    first.log_epoch(0, {"loss": 1.0})
    first.finish("finished", "DC")
    second = nested_run(study, {"hcl.role": "trial", "hcl.trial_id": "t0"})
    study.finish()
    with pytest.raises(UserError, match="more than one run per trial") as refused:
        load_study_data(study.tracking_uri, "twice")
    message = str(refused.value)
    assert "'t0'" in message and first.run_id in message and second in message


def test_varied_params_are_the_columns_with_more_than_one_value() -> None:
    trials = pd.DataFrame(
        {
            "constant": [1.0, 1.0, 1.0],
            "varied": [0.1, 0.2, 0.1],
            "sometimes_missing": [2.0, np.nan, 2.0],
            "always_missing": [np.nan, np.nan, np.nan],
            "text": ["ball", "ball", "ball"],
        }
    )
    columns = [*trials.columns, "not_a_column"]
    assert varied_params(trials, columns) == ["varied", "sometimes_missing"]
    assert varied_params(trials.iloc[:1], columns) == []


@pytest.mark.parametrize("text", ["null", ""])
def test_parse_param_reads_other_missing_texts_as_none(text: str) -> None:
    assert parse_param(text) is None


REGIME_CODE_METRIC = "regime_code"  # logged by the trainable at every epoch
CODE = {regime: float(code) for regime, code in REGIME_CODES.items()}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> StudyRun:
    """A hand-built study with a trial of every kind the table tells apart."""
    study = hand_built_study(tmp_path_factory.mktemp("mixed"), "mixed")

    def trial(trial_id: str, **config: float) -> TrialRun:
        params = {"loss": {"beta": 1.0}, **config}
        return TrialRun.open(
            study.tracking_uri, study.experiment_id, study.run_id, trial_id, params, "mixed"
        )

    # Ten param keys: the odds that they come out sorted by chance are 1 in 10!.
    finished = trial("t_fin", **{key: 1.0 for key in "qwertyuio"})
    for epoch in range(3):
        finished.log_epoch(epoch, {"loss": 1.0, "nc1": 0.5, REGIME_CODE_METRIC: CODE["NC"]})
    finished.log_final_artifacts(np.zeros((3, 3, 2)), np.tile([2.0, 1.0], (3, 1)))
    finished.finish("finished", "NC")
    diverged = trial("t_div")
    diverged.log_epoch(0, {"loss": float("inf"), "nc1": float("-inf")})
    diverged.finish("diverged", "diverged")
    stopped = trial("t_stop")
    stopped.log_epoch(0, {"loss": 1.0})  # no regime code: `last_regime` is its tag
    study.close_trial("t_stop", "stopped", "partial")
    unknown_code = trial("t_nan")
    unknown_code.log_epoch(0, {REGIME_CODE_METRIC: float("nan")})
    unknown_code.finish("failed")
    trial("t_empty").finish("killed")
    client = MlflowClient(study.tracking_uri)
    tags = {"mlflow.parentRunId": study.run_id, "hcl.role": "trial", "hcl.trial_id": "t_raw"}
    raw = client.create_run(study.experiment_id, tags=tags).info.run_id  # no `hcl.status`
    client.set_terminated(raw, "KILLED")
    study.finish()
    return study


def row(data: StudyData, trial_id: str) -> pd.Series:
    return data.trials.set_index("trial_id").loc[trial_id]


def test_regime_is_final_only_for_trials_that_ran_to_their_end(mixed: StudyRun) -> None:
    data = load_study_data(mixed.tracking_uri, "mixed")
    assert (row(data, "t_fin")["regime"], row(data, "t_fin")["last_regime"]) == ("NC", "NC")
    assert row(data, "t_div")["regime"] == "diverged"
    stopped = row(data, "t_stop")
    assert pd.isna(stopped["regime"]) and stopped["last_regime"] == "partial"
    assert pd.isna(row(data, "t_nan")["last_regime"]), "a NaN regime code names no regime"


def test_a_run_without_hcl_status_takes_its_mlflow_status(mixed: StudyRun) -> None:
    raw = row(load_study_data(mixed.tracking_uri, "mixed"), "t_raw")
    assert (raw["status"], raw["mlflow_status"]) == ("killed", "KILLED")


def test_infinite_metrics_come_back_as_infinities(mixed: StudyRun) -> None:
    data = load_study_data(mixed.tracking_uri, "mixed")
    diverged = row(data, "t_div")
    assert (diverged["loss"], diverged["nc1"]) == (np.inf, -np.inf)
    history = data.history[data.history["trial_id"] == "t_div"]
    assert dict(zip(history["metric"], history["value"], strict=True)) == {
        "loss": np.inf,
        "nc1": -np.inf,
    }


def test_metrics_filter_keeps_the_history_to_those_metrics(mixed: StudyRun) -> None:
    data = load_study_data(mixed.tracking_uri, "mixed", metrics=["loss"])
    assert set(data.history["metric"]) == {"loss"}
    assert data.history[data.history["trial_id"] == "t_fin"]["epoch"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("metrics", [None, ["loss"], ["nonexistent"]])
def test_epochs_logged_does_not_depend_on_the_metrics_filter(
    mixed: StudyRun, metrics: list[str] | None
) -> None:
    data = load_study_data(mixed.tracking_uri, "mixed", metrics=metrics)
    assert row(data, "t_fin")["epochs_logged"] == 3
    assert row(data, "t_empty")["epochs_logged"] == 0, "a trial without metrics logged none"


def test_param_columns_are_sorted(mixed: StudyRun) -> None:
    columns = load_study_data(mixed.tracking_uri, "mixed").param_columns
    assert len(columns) == 10
    assert list(columns) == sorted(columns)


def test_singular_values_past_the_last_epoch_are_left_out(mixed: StudyRun) -> None:
    trials = load_study_data(mixed.tracking_uri, "mixed").trials
    finished = trials[trials["trial_id"] == "t_fin"]
    last = load_singular_values(mixed.tracking_uri, finished, epoch=2)
    assert list(last) == ["t_fin"] and last["t_fin"].shape == (2,)
    assert load_singular_values(mixed.tracking_uri, finished, epoch=3) == {}
    assert load_singular_values(mixed.tracking_uri, finished, epoch=-4) == {}


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_history_keeps_the_latest_value_of_an_epoch_logged_twice_and_sorts_by_trial(
    store: str, tmp_path: Path, mlflow_server: Any
) -> None:
    """Two values at one step (a foreign client, or a clock-skewed resend): the latest one,
    by timestamp, as in the run's own summary metric. Rows follow trial ids, whichever way
    MLflow's random run ids sort."""
    if store == "server":
        uri = mlflow_server.uri
        study = StudyRun.start_or_resume(uri, f"twice-{tmp_path.name}", {"name": "twice"})
    else:
        study = hand_built_study(tmp_path, "twice")
        uri = study.tracking_uri
    client = MlflowClient(uri)
    run_ids = sorted(nested_run(study, {"hcl.role": "trial"}) for _ in range(2))
    for trial_id, run_id in zip(["t_b", "t_a"], run_ids, strict=True):  # against run id order
        client.set_tag(run_id, "hcl.trial_id", trial_id)
    latest_first = [Metric("loss", 2.0, 2_000, 1), Metric("loss", 1.0, 1_000, 1)]
    for metric in latest_first:
        client.log_batch(run_ids[1], metrics=[metric])
    data = load_study_data(uri, study.study_name)
    rows = list(data.history[["trial_id", "epoch", "value"]].itertuples(index=False, name=None))
    assert rows == [("t_a", 0, 3.0), ("t_a", 1, 2.0), ("t_b", 0, 3.0)]
    assert row(data, "t_a")["loss"] == 2.0


def test_an_unfinished_studys_note_counts_the_trials_that_ran_to_their_end(
    tmp_path: Path,
) -> None:
    """A stopped trial has a last regime but no final one: it is not counted."""
    study = hand_built_study(tmp_path, "halfway")

    def trial(trial_id: str) -> TrialRun:
        return TrialRun.open(
            study.tracking_uri, study.experiment_id, study.run_id, trial_id, {}, "halfway"
        )

    trial("t_fin").finish("finished", "NC")
    trial("t_stop")
    study.close_trial("t_stop", "stopped", "partial")
    trial("t_run")
    data = load_study_data(study.tracking_uri, "halfway")
    assert row(data, "t_stop")["last_regime"] == "partial"
    note = unfinished_note(data)
    assert note.startswith("Study 'halfway' is not complete: it is still running")
    assert "use the 1 of its 3 trial runs that ran to their end" in note
    study.finish()
    assert unfinished_note(load_study_data(study.tracking_uri, "halfway")) == ""
