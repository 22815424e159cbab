"""Training datasets and batch data of a feature view: point-in-time values, pinned commits and exact recreation,
splits, formats, fitted transformations shared with serving."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fs_dagster import FeatureStore, InvalidDataError, NotFoundError, RandomSplit, TimeSplit
from fs_dagster.core.online.embedded import EmbeddedValkey
from fs_dagster.core.training.training_dataset import TrainingDatasetMismatch, time_split

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.fixture()
def fs(tmp_path):
    store = FeatureStore(root=tmp_path / "store", project="rides")
    yield store
    EmbeddedValkey(store.root).stop()


def _trips(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ts = [hours(1 + i * 0.5) for i in range(n)]
    return pd.DataFrame({
        "trip_id": [f"t{i:03d}" for i in range(n)],
        "ts": ts,
        "hour": [t.replace(minute=0) for t in ts],  # the weather key a request carries
        "city": ["oslo" if i % 3 else "rome" for i in range(n)],
        "driver_id": [i % 4 for i in range(n)],
        "distance": rng.uniform(1, 30, n).round(2),
        "late": [bool(i % 5 == 0) for i in range(n)],
    })


def _setup(fs: FeatureStore, online: bool = False):
    trips = fs.get_or_create_feature_group("trips", primary_key=["trip_id"], event_time="ts", online_enabled=online)
    trips.insert(_trips())
    weather = fs.get_or_create_feature_group("weather", primary_key=["city", "hour"], event_time="hour",
                                             online_enabled=online)
    weather.insert(pd.DataFrame({  # hourly, but rome misses hours 5..9
        "city": ["oslo"] * 24 + ["rome"] * 19,
        "hour": [hours(h) for h in range(24)] + [hours(h) for h in range(24) if not 5 <= h <= 9],
        "temp": [float(h) for h in range(24)] + [100.0 + h for h in range(24) if not 5 <= h <= 9],
    }))
    drivers = fs.get_or_create_feature_group("drivers", primary_key=["driver_id"], event_time="since",
                                             online_enabled=online)
    drivers.insert(pd.DataFrame({"driver_id": [0, 1, 2, 3], "since": [hours(0)] * 3 + [hours(12)],
                                 "rating": [4.0, 4.5, 3.0, 5.0]}))
    query = (trips.select(["distance", "late"])
             .join(weather.select(["temp"]), left_on=["city", "hour"])
             .join(drivers.select(["rating"]), on=["driver_id"]))
    view = fs.get_or_create_feature_view("trip_delays", 1, query, labels=["late"],
                                         transformation_functions={"distance": "standard_scaler"})
    return view, trips, weather, drivers


def _expected(trips: pd.DataFrame) -> pd.DataFrame:
    """The point-in-time values written out by hand: the latest weather hour <= ts (rome has a gap), the driver
    row only once its ``since`` <= ts."""
    rows = []
    for trip in trips.itertuples():
        hour = int((trip.ts - T0) / timedelta(hours=1))
        if trip.city == "rome":
            while 5 <= hour <= 9:
                hour -= 1
            temp = 100.0 + hour
        else:
            temp = float(min(hour, 23))
        rating = None if trip.driver_id == 3 and trip.ts < hours(12) else [4.0, 4.5, 3.0, 5.0][trip.driver_id]
        rows.append({"trip_id": trip.trip_id, "temp": temp, "rating": rating})
    return pd.DataFrame(rows)


def test_training_data_is_point_in_time_correct_and_reproducible(fs) -> None:
    view, trips, weather, drivers = _setup(fs)
    td = view.create_training_data()
    data = td.read(with_keys=True, transformed=False)
    assert list(data.columns) == ["trip_id", "city", "hour", "driver_id", "ts", "distance", "temp", "rating", "late"]
    expected = _expected(_trips())
    merged = data.merge(expected, on="trip_id", suffixes=("", "_expected"))
    assert len(merged) == 40
    assert merged["temp"].tolist() == merged["temp_expected"].tolist()
    assert merged["rating"].isna().tolist() == merged["rating_expected"].isna().tolist()
    assert merged["rating"].dropna().tolist() == merged["rating_expected"].dropna().tolist()
    assert td.pinned_commits == {"trips:1": trips.latest_commit(), "weather:1": weather.latest_commit(),
                                 "drivers:1": drivers.latest_commit()}
    assert td.row_counts == {"all": 40} and td.statistics["all"]["row_count"] == 40

    # new commits: a better rating and hotter weather; the pinned dataset rebuilds byte for byte
    before = {p: p.read_bytes() for p in td.files()}
    drivers.insert(pd.DataFrame({"driver_id": [0], "since": [hours(1)], "rating": [1.0]}))
    weather.insert(pd.DataFrame({"city": ["oslo"], "hour": [hours(3)], "temp": [-50.0]}))
    for path in td.files():
        path.unlink()
    with pytest.raises(Exception, match="recreate"):
        td.read()
    assert td.recreate().content_hash == td.content_hash
    assert {p: p.read_bytes() for p in td.files()} == before

    newer = view.create_training_data()
    assert newer.version == td.version + 1 and newer.content_hash != td.content_hash
    fresh = newer.read(with_keys=True, transformed=False).set_index("trip_id")
    # the upsert replaced driver 0's row (its key has no time): every trip from hour 1 on sees the new rating
    assert fresh.loc["t000", "rating"] == 1.0
    assert fresh.loc["t004", "temp"] == -50.0  # oslo, 03:00
    assert view.get_training_dataset(td.version).content_hash == td.content_hash
    assert [d.version for d in view.get_training_datasets()] == [td.version, newer.version]


def test_recreate_refuses_a_different_rebuild_and_keeps_the_files(fs) -> None:
    view, *_ = _setup(fs)
    td = view.create_training_data()
    before = {p: p.read_bytes() for p in td.files()}
    td.spec["content_hash"] = "0" * 64  # as if the recorded dataset had other bytes
    with pytest.raises(TrainingDatasetMismatch, match="content hash"):
        td.recreate()
    assert {p: p.read_bytes() for p in td.files()} == before


def test_random_and_time_splits(fs) -> None:
    view, *_ = _setup(fs)
    a = view.create_train_test_split(test_size=0.25, seed=11)
    b = view.create_train_test_split(test_size=0.25, seed=11)
    c = view.create_train_test_split(test_size=0.25, seed=12)
    assert a.content_hash == b.content_hash != c.content_hash
    x_train, x_test, y_train, y_test = a.train_test_split(transformed=False)
    assert len(x_train) + len(x_test) == 40 and 0 < len(x_test) < 20
    assert list(y_train.columns) == ["late"] and "late" not in x_train.columns
    train_ids = set(a.read("train", with_keys=True)["trip_id"])
    test_ids = set(a.read("test", with_keys=True)["trip_id"])
    assert not train_ids & test_ids and len(train_ids | test_ids) == 40

    three = view.create_train_validation_test_split(validation_size=0.2, test_size=0.2, seed=1)
    assert three.splits == ["train", "validation", "test"] and sum(three.row_counts.values()) == 40
    assert len(three.train_validation_test_split()) == 6

    timed = view.create_training_data(time_split(train_end=hours(10), test_start=hours(12), test_end=hours(18)))
    train = timed.read("train", with_keys=True)
    test = timed.read("test", with_keys=True)
    assert train["ts"].max() < hours(10) and test["ts"].min() >= hours(12) and test["ts"].max() < hours(18)
    assert len(train) == 18 and len(test) == 12  # trips every 30 min from hour 1; 10..12 left out
    with pytest.raises(InvalidDataError, match="overlap"):
        TimeSplit({"train": (None, hours(5)), "test": (hours(4), None)})
    with pytest.raises(InvalidDataError, match="sum to 1"):
        RandomSplit({"train": 0.8, "test": 0.3})
    with pytest.raises(InvalidDataError, match="has no split 'valid'"):
        three.read("valid")


def test_csv_format_reads_back_like_parquet(fs) -> None:
    view, *_ = _setup(fs)
    parquet = view.create_train_test_split(test_size=0.5, seed=3)
    csv = view.create_train_test_split(test_size=0.5, seed=3, data_format="csv")
    assert csv.files()[0].suffix == ".csv" and csv.files()[0].read_text().startswith('"trip_id"')
    for split in ("train", "test"):
        left = parquet.read(split, transformed=False)
        right = csv.read(split, transformed=False)
        pd.testing.assert_frame_equal(left, right, check_dtype=False)
    assert csv.recreate().content_hash == csv.content_hash
    with pytest.raises(InvalidDataError, match="data_format"):
        view.create_training_data(data_format="json")


def test_transformations_fit_on_train_only_and_serving_applies_the_same(fs) -> None:
    view, trips, weather, drivers = _setup(fs, online=True)
    td = view.create_train_test_split(test_size=0.3, seed=5)
    raw_train = td.read("train", transformed=False)
    params = td.transformations.params["distance"]
    assert params["mean"] == pytest.approx(raw_train["distance"].mean())
    assert params["mean"] != pytest.approx(td.read(transformed=False)["distance"].mean())
    transformed = td.read("train", with_keys=True)
    assert transformed["distance"].mean() == pytest.approx(0.0, abs=1e-9)

    # the last trip served: the online store has each entity's latest row (weather: the city's latest hour, 23:00,
    # after the trip's 20:30), i.e. the point-in-time values at the latest event time, transformed as in training
    row = td.read(with_keys=True).sort_values("ts").iloc[-1]
    view.init_serving(td.transformations)
    vector = view.get_feature_vector({k: row[k] for k in view.serving_keys}, return_type="dict")
    spine = pd.DataFrame([{**{k: row[k] for k in view.join_keys}, "ts": hours(23)}])
    latest = view.get_batch_data(spine=spine, transformed=True).iloc[0]
    assert vector == {name: latest[name] for name in view.feature_names}
    assert vector["distance"] == row["distance"] and vector["temp"] == 123.0  # (the trip's training row: 120.0)


def test_batch_data_windows_and_as_of(fs) -> None:
    view, trips, weather, drivers = _setup(fs)
    first = drivers.latest_commit()  # (every group has a commit at or before it)
    batch = view.get_batch_data(hours(5), hours(8))
    assert "late" not in batch.columns and batch["ts"].min() >= hours(5) and batch["ts"].max() < hours(8)
    assert len(batch) == 6
    trips.insert(pd.DataFrame({"trip_id": ["t999"], "ts": [hours(6)], "hour": [hours(6)], "city": ["oslo"],
                               "driver_id": [1],
                               "distance": [3.0], "late": [False]}))
    assert len(view.get_batch_data(hours(5), hours(8))) == 7
    assert len(view.get_batch_data(hours(5), hours(8), as_of=first)) == 6
    only = view.get_batch_data(hours(5), hours(8), with_keys=False)
    assert list(only.columns) == view.feature_names
    with pytest.raises(InvalidDataError, match="init_serving"):
        view.get_batch_data(hours(5), hours(8), transformed=True)
    td = view.create_train_test_split(test_size=0.5, seed=9)
    view.init_serving(td.transformations)
    scaled = view.get_batch_data(hours(5), hours(8), transformed=True)
    params = td.transformations.params["distance"]
    raw = view.get_batch_data(hours(5), hours(8))
    assert scaled["distance"].tolist() == pytest.approx(((raw["distance"] - params["mean"]) / params["std"]).tolist())


def test_a_spine_table_and_lookbacks(fs) -> None:
    view, trips, weather, drivers = _setup(fs)
    spine = pd.DataFrame({"trip_id": ["t001", "t001", "nope"], "city": ["rome", "rome", "oslo"],
                          "hour": [hours(1), hours(30), hours(2)],
                          "ts": [hours(1.5), hours(30), hours(2)], "driver_id": [1, 1, 3]})
    td = view.create_training_data(spine=spine)
    data = td.read(with_keys=True, transformed=False)
    assert data["trip_id"].tolist() == ["t001", "t001", "nope"]  # spine order, duplicates kept
    assert data["temp"].tolist() == [101.0, 123.0, 2.0]
    assert data["distance"].notna().tolist() == [True, True, False]  # an unknown trip has no root features
    assert pd.isna(data["rating"].iloc[2])  # driver 3 joins at hour 12
    assert td.recreate().content_hash == td.content_hash  # the spine is kept with the dataset

    query = (trips.select(["distance", "late"])
             .join(weather.select(["temp"]), left_on=["city", "hour"], lookback=timedelta(hours=2)))
    stale = fs.get_or_create_feature_view("trip_weather_fresh", 1, query, labels=["late"])
    rows = stale.create_training_data().read(with_keys=True, transformed=False).set_index("trip_id")
    # rome has no weather 05:00-09:00: its 07:00 and 08:30 trips see 04:00, 2 h old or more -> null; 05:30 not
    rome = rows[rows["city"] == "rome"]
    assert rome.loc[rome["ts"] == hours(5.5), "temp"].tolist() == [104.0]
    gap = rome[(rome["ts"] >= hours(6)) & (rome["ts"] < hours(10))]
    assert len(gap) == 2 and gap["temp"].isna().all()
    assert rows[rows["city"] == "oslo"]["temp"].notna().all()

    with pytest.raises(InvalidDataError, match="lacks serving key"):
        view.create_training_data(spine=spine.drop(columns=["driver_id"]))
    with pytest.raises(InvalidDataError, match="no event-time column 'when'"):
        view.create_training_data(spine=spine, spine_event_time="when")


def test_training_data_needs_commits(fs) -> None:
    trips = fs.get_or_create_feature_group("trips", primary_key=["trip_id"], event_time="ts")
    view = fs.get_or_create_feature_view("v", 1, trips.select(["distance"]))
    with pytest.raises(InvalidDataError, match="trips:1 has no commit yet"):
        view.create_training_data()


def test_files_are_plain_parquet(fs) -> None:
    view, *_ = _setup(fs)
    td = view.create_train_test_split(test_size=0.5, seed=2)
    table = pq.read_table(td.files("train")[0])
    assert table.num_rows == td.row_counts["train"]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"


def test_clashing_names_get_prefixes(fs) -> None:
    view, trips, weather, drivers = _setup(fs)
    query = (trips.select(["distance", "late"])
             .join(weather.select(["temp", "city", "hour"]), left_on=["city", "hour"])
             .join(drivers.select(["rating", "since"]), on=["driver_id"])
             .join(drivers.select(["rating"]), on=["driver_id"], prefix="again_"))
    clash = fs.get_or_create_feature_view("clash", 1, query, labels=["late"])
    assert clash.feature_names == ["distance", "temp", "weather_city", "weather_hour", "rating", "since",
                                   "again_rating"]
    data = clash.create_training_data().read(with_keys=True)
    assert (data["weather_city"] == data["city"]).all() and (data["weather_hour"] <= data["ts"]).all()
    assert data["again_rating"].equals(data["rating"])


def test_a_join_on_the_spines_event_time_stores_it_once(fs) -> None:
    """Weather joined on the root's own event time: the column is a join key and the event time at once (not a
    serving key: weather is served by city, its latest hour)."""
    _, trips, weather, _ = _setup(fs)
    hourly = fs.get_or_create_feature_group("hourly_trips", primary_key=["trip_id"], event_time="hour")
    hourly.insert(_trips())
    query = hourly.select(["distance", "late"]).join(weather.select(["temp"]), left_on=["city", "hour"])
    view = fs.get_or_create_feature_view("on_event_time", 1, query, labels=["late"])
    assert view.serving_keys == ["trip_id", "city"] and view.join_keys == ["trip_id", "city", "hour"]
    td = view.create_train_test_split(test_size=0.5, seed=1)
    for split in ("train", "test"):
        data = td.read(split, with_keys=True, transformed=False)
        assert list(data.columns) == ["trip_id", "city", "hour", "distance", "temp", "late"]
    data = pd.concat([td.read(s, with_keys=True, transformed=False) for s in ("train", "test")])
    oslo = data[data["city"] == "oslo"]
    assert (oslo["temp"] == [float(h.hour) for h in oslo["hour"]]).all()  # the weather of that very hour
    batch = view.get_batch_data()
    assert list(batch.columns) == ["trip_id", "city", "hour", "distance", "temp"]


def test_lookback_boundary_exclusive_by_default_inclusive_as_feasts_ttl(fs) -> None:
    _, trips, weather, _ = _setup(fs)
    # rome has no weather 05:00-09:00: at 06:00 its latest row (04:00) is exactly 2 h old, at 05:30 1.5 h
    spine = pd.DataFrame({"trip_id": ["t000"] * 2, "city": ["rome"] * 2, "hour": [hours(6), hours(5)],
                          "ts": [hours(6), hours(5.5)], "driver_id": [0, 0]})
    exclusive = fs.get_or_create_feature_view("fresh_weather", 1, trips.select(["distance"]).join(
        weather.select(["temp"]), left_on=["city", "hour"], lookback=timedelta(hours=2)))
    inclusive = fs.get_or_create_feature_view("fresh_weather_ttl", 1, trips.select(["distance"]).join(
        weather.select(["temp"]), left_on=["city", "hour"], lookback=timedelta(hours=2), lookback_inclusive=True))
    got = exclusive.create_training_data(spine=spine).read(transformed=False)["temp"].tolist()
    assert pd.isna(got[0]) and got[1] == 104.0  # exactly 2 h old is out of the window by default
    got = inclusive.create_training_data(spine=spine).read(transformed=False)["temp"].tolist()
    assert got == [104.0, 104.0]
    # the choice is part of the stored definition: the same query without it is another view
    assert fs.get_feature_view("fresh_weather_ttl", 1).query.joins[0].lookback_inclusive
    with pytest.raises(InvalidDataError, match="another definition|differs|exists"):
        fs.get_or_create_feature_view("fresh_weather", 1, trips.select(["distance"]).join(
            weather.select(["temp"]), left_on=["city", "hour"], lookback=timedelta(hours=2), lookback_inclusive=True))
    with pytest.raises(InvalidDataError, match="lookback_inclusive=True needs a lookback"):
        trips.select(["distance"]).join(weather.select(["temp"]), left_on=["city", "hour"], lookback_inclusive=True)


def test_a_view_joining_on_a_missing_column_is_refused_at_registration(fs) -> None:
    _, trips, weather, _ = _setup(fs)
    query = trips.select(["distance"]).join(weather.select(["temp"]), left_on=["cty", "hour"])
    with pytest.raises(InvalidDataError, match=r"left_on \['cty', 'hour'\].*no column\(s\) \['cty'\]"):
        fs.get_or_create_feature_view("typo", 1, query)
    with pytest.raises(NotFoundError):
        fs.get_feature_view("typo", 1)  # nothing was registered
    with pytest.raises(InvalidDataError, match="request key 'city' must be a join key .* that the root"):
        fs.get_or_create_feature_view("typo", 1, query, request_keys=["city"])
    # a key the requests (and spines) carry: declared, the view serves and builds training data from a spine
    view = fs.get_or_create_feature_view("by_request", 1, query, request_keys=["cty"])
    assert fs.get_feature_view("by_request", 1).request_keys == ("cty",)
    assert view.serving_keys == ["trip_id", "cty"]  # (weather: a time series served by entity, the city)
    spine = pd.DataFrame({"trip_id": ["t001"], "cty": ["rome"], "hour": [hours(2)], "ts": [hours(2)]})
    assert view.get_batch_data(spine=spine)["temp"].tolist() == [102.0]
    with pytest.raises(InvalidDataError, match=r"lacks \['cty'\]"):
        view.get_batch_data()  # the root group cannot be the spine


def test_an_empty_spine_gives_an_empty_dataset(fs) -> None:
    view, *_ = _setup(fs)
    for spine in (pd.DataFrame({"trip_id": [], "city": [], "hour": [], "ts": [], "driver_id": []}),
                  pd.DataFrame({"trip_id": [None], "city": [None], "hour": [None], "ts": [None],
                                "driver_id": [None]}).iloc[:0]):
        td = view.create_training_data(spine=spine)
        assert td.row_counts == {"all": 0}
        data = td.read(with_keys=True, transformed=False)
        assert len(data) == 0 and "temp" in data.columns
    all_null = pd.DataFrame({"trip_id": ["t001"], "city": [None], "hour": [hours(2)], "ts": [hours(2)],
                             "driver_id": [1]})
    data = view.create_training_data(spine=all_null).read(with_keys=True, transformed=False)
    assert len(data) == 1 and pd.isna(data["temp"].iloc[0])  # a null key matches nothing
    with pytest.raises(InvalidDataError, match="spine must be a pandas DataFrame or an Arrow table"):
        view.create_training_data(spine=[{"trip_id": "t001"}])


def test_in_memory_point_in_time_reads_for_a_callers_spine(fs) -> None:
    view, *_ = _setup(fs)
    spine = pd.DataFrame({"trip_id": ["t001", "t001", "nope"], "city": ["rome", "rome", "oslo"],
                          "hour": [hours(1), hours(30), hours(2)],
                          "ts": [hours(1.5), hours(30), hours(2)], "driver_id": [1, 1, 3]})
    batch = view.get_batch_data(spine=spine)
    assert batch["temp"].tolist() == [101.0, 123.0, 2.0] and "late" not in batch.columns
    assert list(batch.columns[:5]) == ["trip_id", "city", "hour", "driver_id", "ts"]
    features, labels = view.training_data(spine=spine)
    assert list(features.columns) == view.feature_names and list(labels.columns) == ["late"]
    assert not (fs.project_path / "training_datasets").exists()  # in memory: nothing written
    # the same rows as a written training dataset of the same spine
    written = view.create_training_data(spine=spine).read(transformed=False)
    assert features.equals(written[view.feature_names]) and labels.equals(written[["late"]])
    keyed, _ = view.training_data(start_time=hours(5), end_time=hours(8), with_keys=True)
    assert len(keyed) == 6 and keyed["ts"].between(hours(5), hours(8), inclusive="left").all()
    assert list(keyed.columns) == ["trip_id", "city", "hour", "driver_id", "ts", "distance", "temp", "rating"]
