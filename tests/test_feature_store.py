"""The Python API (FeatureStore / FeatureGroup): writes, reads, time travel, registry, statistics, search."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fs_dagster import FeatureStore, InvalidDataError, NotFoundError, SchemaChangeError, TimeWindow
from fs_dagster.core.errors import CommitNotFoundError
from fs_dagster.core.offline.hudi_reader import HudiTableReader

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _weather(hours: range, origins=("JFK", "LGA"), temp_offset: float = 0.0) -> pd.DataFrame:
    rows = [
        {"origin": o, "time_hour": T0 + timedelta(hours=h), "temp": float(h) + temp_offset, "humid": 50.0 + h}
        for o in origins
        for h in hours
    ]
    return pd.DataFrame(rows)


@pytest.fixture()
def fs(tmp_path) -> FeatureStore:
    return FeatureStore(root=tmp_path / "store", project="test")


def _weather_group(fs: FeatureStore):
    return fs.get_or_create_feature_group(
        "weather",
        version=1,
        primary_key=["origin", "time_hour"],
        event_time="time_hour",
        partition_key=["origin"],
        description="Hourly weather per airport",
        features={"temp": "Temperature in F", "humid": "Relative humidity"},
        tags=["weather"],
    )


def test_insert_read_time_travel_changes_and_commits(fs: FeatureStore) -> None:
    fg = _weather_group(fs)
    first = fg.insert(_weather(range(0, 3)))
    second = fg.insert(_weather(range(2, 5), temp_offset=100.0))  # hour 2 updated, 3-4 new
    assert (first.rows_inserted, second.rows_inserted, second.rows_updated) == (6, 4, 2)

    latest = fg.read().sort_values(["origin", "time_hour"]).reset_index(drop=True)
    assert len(latest) == 10
    assert latest.loc[latest.time_hour == T0 + timedelta(hours=2), "temp"].tolist() == [102.0, 102.0]
    assert str(latest["time_hour"].dtype) == "datetime64[us, UTC]"

    before = fg.read(as_of=first.instant)
    assert sorted(before["temp"].tolist()) == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    # wall-clock time travel: a moment between the two commits
    between = fg.commit_details()[-1].committed_at + timedelta(microseconds=500)
    assert len(fg.read(as_of=between)) in (6, 10)  # same millisecond as the second commit is possible
    with pytest.raises(CommitNotFoundError, match="no commit at or before"):
        fg.read(as_of="20000101000000000")

    changes = fg.read_changes(first.instant, second.instant)
    assert len(changes) == 6 and set(changes["_hoodie_commit_time"]) == {second.instant}

    details = fg.commit_details()
    assert [c.instant for c in details] == [second.instant, first.instant]
    assert (details[0].rows_inserted, details[0].rows_updated) == (4, 2)

    projected = fg.read(columns=["origin", "temp"], where="origin = 'JFK'")
    assert list(projected.columns) == ["origin", "temp"] and set(projected.origin) == {"JFK"}


def test_delete_and_deleted_keys(fs: FeatureStore) -> None:
    fg = _weather_group(fs)
    first = fg.insert(_weather(range(0, 3)))
    result = fg.delete(pd.DataFrame({"origin": ["JFK"], "time_hour": [T0]}))
    assert result.rows_deleted == 1 and fg.count() == 5
    gone = fg.read_deleted_keys(first.instant)
    assert gone["_hoodie_partition_path"].tolist() == ["origin=JFK"]


def test_registry_schema_statistics_and_search(fs: FeatureStore) -> None:
    fg = _weather_group(fs)
    fg.insert(_weather(range(0, 24)))
    spec = fs.get_feature_group("weather").spec
    types = {f.name: f.type for f in spec.features}
    assert types["temp"] == "double" and types["time_hour"].startswith("timestamp[us")
    assert spec.feature("temp").description == "Temperature in F"
    assert [c.instant for c in fs.registry.commits("test", "weather", 1)] == [fg.latest_commit()]

    stats = fg.statistics()
    temp = stats["features"]["temp"]
    assert temp["count"] == 48 and temp["min"] == 0.0 and temp["max"] == 23.0
    assert temp["mean"] == pytest.approx(11.5)
    assert stats["correlations"] is not None

    hits = fs.search("temperature")
    assert any(h.feature == "temp" for h in hits)
    assert fs.search("weather")[0].feature_group == "weather"


def test_identity_change_needs_new_version(fs: FeatureStore) -> None:
    _weather_group(fs)
    with pytest.raises(InvalidDataError, match="primary_key"):
        fs.get_or_create_feature_group("weather", version=1, primary_key=["origin"], event_time="time_hour",
                                       partition_key=["origin"])
    v2 = fs.get_or_create_feature_group("weather", version=2, primary_key=["origin"], event_time="time_hour")
    assert v2.path.name == "weather_v2"
    assert fs.get_feature_group("weather").version == 2  # latest by default
    with pytest.raises(NotFoundError):
        fs.get_feature_group("nope")


def test_event_time_and_window_validation_leave_table_unchanged(fs: FeatureStore) -> None:
    fg = _weather_group(fs)
    fg.insert(_weather(range(0, 2)))
    before = fg.commit_details()
    bad = _weather(range(0, 2))
    bad.loc[0, "time_hour"] = None
    with pytest.raises(InvalidDataError, match="time_hour.*null"):
        fg.insert(bad)
    with pytest.raises(InvalidDataError, match="must be a timestamp or date"):
        fg.insert(_weather(range(0, 2)).assign(time_hour="2024-01-01"))
    window = TimeWindow(T0, T0 + timedelta(hours=1))
    with pytest.raises(InvalidDataError, match=r"2 row\(s\) have time_hour outside the partition window"):
        fg.insert(_weather(range(0, 2)), window=window)
    with pytest.raises(SchemaChangeError, match="'temp'"):
        fg.insert(_weather(range(0, 2)).assign(temp="warm"))
    assert fg.commit_details() == before
    fg.insert(_weather(range(0, 1)), window=window)  # inside the window: fine


def test_schema_evolution_keeps_old_commits_readable(fs: FeatureStore) -> None:
    fg = _weather_group(fs)
    first = fg.insert(_weather(range(0, 2)))
    fg.insert(_weather(range(2, 3)).assign(wind=5.0))
    assert "wind" not in fg.read(as_of=first.instant).columns
    latest = fg.read()
    assert latest["wind"].isna().sum() == 4 and (latest["wind"] == 5.0).sum() == 2
    assert fs.get_feature_group("weather").spec.feature("wind").type == "double"


def test_file_by_file_reads_reconcile_files_of_an_older_schema(fs: FeatureStore) -> None:
    """The full online sync reads the snapshot file by file: a file written before a new column is read through
    DuckDB, which adds it as nulls; the others with pyarrow directly; together exactly the snapshot."""
    fg = _weather_group(fs)
    fg.insert(_weather(range(0, 2)))
    fg.insert(_weather(range(2, 3), origins=("LGA",)).assign(wind=5.0))  # only LGA's file gains the column
    reader = HudiTableReader(fg.path)
    assert any("wind" not in pq.read_schema(f).names for f in reader.base_files())
    assert any("wind" in pq.read_schema(f).names for f in reader.base_files())
    by_file = pa.concat_tables(reader.read_by_file(with_meta=True))
    snapshot = reader.read(with_meta=True)
    assert by_file.schema == snapshot.schema
    assert sorted(by_file.to_pylist(), key=repr) == sorted(snapshot.to_pylist(), key=repr)


def test_projects_are_isolated(tmp_path) -> None:
    a = FeatureStore(root=tmp_path, project="a")
    b = FeatureStore(root=tmp_path, project="b")
    _weather_group(a).insert(_weather(range(0, 1)))
    with pytest.raises(NotFoundError):
        b.get_feature_group("weather")
    assert _weather_group(b).count() == 0


def test_cli_lists_commits_search_and_errors(fs: FeatureStore, capsys) -> None:
    from fs_dagster.cli import main

    fg = _weather_group(fs)
    result = fg.insert(_weather(range(0, 2)))
    base = ["--root", str(fs.root), "--project", "test"]
    assert main([*base, "list"]) == 0 and "weather" in capsys.readouterr().out
    assert main([*base, "commits", "weather"]) == 0 and result.instant in capsys.readouterr().out
    assert main([*base, "search", "humidity"]) == 0 and "weather.humid" in capsys.readouterr().out
    assert main([*base, "stats", "weather"]) == 0 and '"temp"' in capsys.readouterr().out
    assert main([*base, "commits", "missing"]) == 2 and "not found" in capsys.readouterr().err


def test_cli_default_root_matches_the_store() -> None:
    from fs_dagster import cli
    from fs_dagster.core import store

    assert cli.DEFAULT_ROOT == store.DEFAULT_ROOT


# --- names, versions and read arguments refused up front, clearly -----------------------------------------------


@pytest.mark.parametrize("name", ["a-b", "1x", "é", "a.b", "My Col"])
def test_a_column_name_avro_refuses_never_makes_the_table_unreadable(fs: FeatureStore, name: str) -> None:
    """Such a name used to be committed, after which every read, insert and statistics call failed in hudi-rs
    ("Failed to parse Avro schema: Invalid field name"). Now the batch is refused and the table stays usable."""
    fg = _weather_group(fs)
    first = fg.insert(_weather(range(0, 2)))
    with pytest.raises(InvalidDataError, match=re.escape(repr(name)) + ".*Avro"):
        fg.insert(_weather(range(2, 3)).assign(**{name: 1.0}))
    assert len(fg.read()) == 4 and fg.count() == 4 and len(fg.read(as_of=first.instant)) == 4
    assert fg.statistics()["row_count"] == 4 and [c.instant for c in fg.commit_details()] == [first.instant]
    assert fg.insert(_weather(range(2, 3)).assign(wind_speed=1.0)).rows_inserted == 2


@pytest.mark.parametrize("role", ["primary_key", "event_time", "partition_key"])
def test_key_names_avro_refuses_are_refused_at_registration(fs: FeatureStore, role: str) -> None:
    keys = {"primary_key": ["origin", "time_hour"], "event_time": "time_hour", "partition_key": ["origin"]}
    keys[role] = "time hour" if role == "event_time" else ["time-hour"]
    with pytest.raises(InvalidDataError, match="Avro"):
        fs.get_or_create_feature_group("weather", version=1, **keys)
    assert fs.get_feature_groups() == []


def test_read_of_unknown_columns_names_them_and_lists_the_columns(fs: FeatureStore) -> None:
    fg = _weather_group(fs)
    first = fg.insert(_weather(range(0, 2)))
    fg.insert(_weather(range(2, 3)).assign(wind=5.0))
    with pytest.raises(InvalidDataError, match=r"no column\(s\) \['nope'\]; the columns are: \['origin', 'time_hour', "
                                               r"'temp', 'humid', 'wind'\]"):
        fg.read(columns=["temp", "nope"])
    with pytest.raises(InvalidDataError, match=rf"\['wind'\] did not exist as of commit {first.instant}"):
        fg.read(columns=["wind"], as_of=first.instant)
    with pytest.raises(InvalidDataError, match="a list of column names, got the string 'temp'"):
        fg.read(columns="temp")
    with pytest.raises(InvalidDataError, match=r"no column\(s\) \['nope'\]"):
        fg.read_changes(first.instant, columns=["nope"])
    with pytest.raises(InvalidDataError, match=r"where='nope = 1' is not a valid predicate.*nope"):
        fg.read(where="nope = 1")
    assert list(fg.read(columns=["temp"], as_of=first.instant).columns) == ["temp"]


def test_read_changes_with_a_malformed_instant_names_it_and_the_format(fs: FeatureStore) -> None:
    fg = _weather_group(fs)
    first = fg.insert(_weather(range(0, 2)))
    second = fg.insert(_weather(range(2, 3)))
    for kwargs, shown in (({"start": "garbage"}, "start='garbage'"), ({"start": first.instant, "end": "2024"},
                                                                          "end='2024'")):
        with pytest.raises(CommitNotFoundError, match=re.escape(shown) + r".*17 digits yyyyMMddHHmmssSSS \(UTC\)"):
            fg.read_changes(**kwargs)
    with pytest.raises(CommitNotFoundError, match=re.escape("as_of='yesterday'")):
        fg.read(as_of="yesterday")
    # a datetime works as a start too
    assert set(fg.read_changes(datetime(2000, 1, 1))["_hoodie_commit_time"]) == {first.instant, second.instant}


def test_feature_group_names_over_128_characters_are_refused_at_registration(fs: FeatureStore) -> None:
    """A 300-character name used to register, then fail at the first insert with a bare "File name too long"."""
    with pytest.raises(InvalidDataError, match="is 300 characters long; at most 128"):
        fs.get_or_create_feature_group("g" * 300, primary_key=["origin"])
    assert fs.get_feature_groups() == []
    longest = fs.get_or_create_feature_group("g" * 128, version=2**31 - 1, primary_key=["origin", "time_hour"])
    assert longest.insert(_weather(range(0, 1))).rows_inserted == 2 and longest.count() == 2
    with pytest.raises(InvalidDataError, match="feature view name"):
        fs.get_or_create_feature_view("v" * 129, 1, longest.select(["temp"]))


def test_bool_versions_are_refused_everywhere(fs: FeatureStore) -> None:
    """``True == 1`` in Python; a bool version used to address version 1 silently."""
    from fs_dagster import build_training_dataset_asset
    from fs_dagster.core.specs import FeatureGroupSpec

    fg = _weather_group(fs)
    fg.insert(_weather(range(0, 2)))
    query = fg.select(["temp"])
    fs.get_or_create_feature_view("delays", 1, query).create_training_data()
    refusals = {
        "FeatureGroupSpec": lambda: FeatureGroupSpec("weather", version=True, primary_key=("origin",)),
        "get_or_create_feature_group": lambda: fs.get_or_create_feature_group("weather", version=True,
                                                                              primary_key=["origin"]),
        "get_feature_group": lambda: fs.get_feature_group("weather", version=True),
        "get_or_create_feature_view": lambda: fs.get_or_create_feature_view("delays", True, query),
        "get_feature_view": lambda: fs.get_feature_view("delays", version=True),
        "get_training_dataset": lambda: fs.get_feature_view("delays", 1).get_training_dataset(version=True),
        "build_training_dataset_asset": lambda: build_training_dataset_asset("delays", True, deps=["weather"]),
    }
    for where, call in refusals.items():
        with pytest.raises(InvalidDataError, match="version must be a positive integer.*got True"):
            call()
            pytest.fail(f"{where} accepted version=True")
    assert [(s.name, s.version) for s in fs.registry.list_feature_groups("test")] == [("weather", 1)]
    assert fs.get_feature_view("delays", 1).get_training_dataset(1).version == 1
