"""The metadata registry on real SQLite files: specs, commits, statistics, search, several processes at once."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError, NotFoundError
from fs_dagster.core.registry import CommitRecord, Registry, SearchHit
from fs_dagster.core.specs import Feature, FeatureGroupSpec

T0 = datetime(2024, 1, 5, 10, 30, tzinfo=timezone.utc)


def weather(version: int = 1, **changes: object) -> FeatureGroupSpec:
    fields: dict[str, object] = dict(
        name="weather_hourly",
        version=version,
        primary_key=("origin", "time_hour"),
        event_time="time_hour",
        partition_key=("origin",),
        description="Hourly weather observations at the NYC airports",
        tags=("weather", "nyc"),
        owner="data-team",
        features=(Feature("temp", description="Temperature in F"), Feature("wind_speed", description="mph")),
    )
    fields.update(changes)
    return FeatureGroupSpec(**fields)  # type: ignore[arg-type]


def commit(i: int, operation: str = "UPSERT", row_count: int | None = None) -> CommitRecord:
    moment = T0 + timedelta(seconds=i)
    instant = moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"
    return CommitRecord(
        instant, operation, rows_inserted=i, rows_updated=1, rows_deleted=0, committed_at=moment, row_count=row_count
    )


@pytest.fixture
def registry(tmp_path: Path):
    reg = Registry.for_root(tmp_path / "store")
    yield reg
    reg.dispose()


# ---------------------------------------------------------------------------------------------- feature groups


def test_for_root_creates_a_wal_sqlite_file(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    with Registry.for_root(root) as reg:
        reg.register_feature_group("p", weather())
        assert (root / "registry.db").is_file()
        assert str(root / "registry.db") in repr(reg)
    mode = sqlite3.connect(root / "registry.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_register_and_get_round_trip(registry: Registry) -> None:
    stored = registry.register_feature_group("flights", weather())
    assert stored == registry.get_feature_group("flights", "weather_hourly")
    assert stored.primary_key == ("origin", "time_hour")
    assert stored.partition_key == ("origin",)
    assert stored.tags == ("weather", "nyc")
    assert stored.owner == "data-team"
    assert [f.name for f in stored.features] == ["temp", "wind_speed"]
    assert stored.feature("temp") == Feature("temp", "", "Temperature in F")


def test_registry_persists_across_instances(tmp_path: Path) -> None:
    with Registry.for_root(tmp_path) as first:
        first.register_feature_group("p", weather())
        first.record_commit("p", "weather_hourly", 1, commit(1))
    with Registry(f"sqlite:///{tmp_path / 'registry.db'}") as second:
        assert second.get_feature_group("p", "weather_hourly").description.startswith("Hourly")
        assert [c.instant for c in second.commits("p", "weather_hourly", 1)] == [commit(1).instant]


def test_in_memory_sqlite_works() -> None:
    with Registry("sqlite://") as reg:
        reg.register_feature_group("p", weather())
        assert reg.list_feature_groups("p")[0].name == "weather_hourly"


def test_register_again_updates_descriptive_fields_only_when_given(registry: Registry) -> None:
    registry.register_feature_group("p", weather())
    updated = registry.register_feature_group(
        "p",
        weather(
            description="",
            tags=(),
            owner=None,
            online_enabled=True,
            features=(Feature("temp", description=""), Feature("dewp", description="Dew point in F")),
        ),
    )
    assert updated.description == "Hourly weather observations at the NYC airports"  # empty does not erase
    assert updated.tags == ("weather", "nyc")
    assert updated.owner == "data-team"
    assert updated.online_enabled is True
    assert updated.feature("temp").description == "Temperature in F"
    assert [f.name for f in updated.features] == ["temp", "wind_speed", "dewp"]  # unknown features appended

    again = registry.register_feature_group("p", weather(description="New text", tags=("meteo",), owner="ops"))
    assert (again.description, again.tags, again.owner) == ("New text", ("meteo",), "ops")
    assert again.feature("dewp").description == "Dew point in F"
    assert registry.get_feature_group("p", "weather_hourly") == again


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("primary_key", ("origin",)),
        ("event_time", None),
        ("partition_key", ()),
        ("hive_style_partitioning", False),
    ],
)
def test_register_rejects_a_changed_identity(registry: Registry, field: str, value: object) -> None:
    registry.register_feature_group("p", weather())
    with pytest.raises(InvalidDataError, match=rf"'weather_hourly' version 1 .*{field}=.*new version"):
        registry.register_feature_group("p", weather(**{field: value}))
    # a new version may change it
    assert getattr(registry.register_feature_group("p", weather(version=2, **{field: value})), field) == value


def test_register_keeps_stored_types_and_fills_missing_ones(registry: Registry) -> None:
    registry.register_feature_group("p", weather())
    registry.update_features("p", "weather_hourly", 1, [Feature("temp", "double")])
    stored = registry.register_feature_group(
        "p", weather(features=(Feature("temp", "float"), Feature("wind_speed", "int64")))
    )
    assert stored.feature("temp").type == "double"
    assert stored.feature("wind_speed").type == "int64"


def test_register_rejects_duplicate_features(registry: Registry) -> None:
    with pytest.raises(InvalidDataError, match="'temp' is listed twice"):
        registry.register_feature_group("p", weather(features=(Feature("temp"), Feature("temp"))))


def test_get_latest_version_and_not_found_messages(registry: Registry) -> None:
    registry.register_feature_group("p", weather(version=1))
    registry.register_feature_group("p", weather(version=3))
    registry.register_feature_group("p", FeatureGroupSpec("airports", primary_key=("faa",)))
    assert registry.get_feature_group("p", "weather_hourly").version == 3
    assert registry.get_feature_group("p", "weather_hourly", 1).version == 1
    with pytest.raises(NotFoundError, match=r"'weather_hourly' version 2 not found in project 'p'; versions: 1, 3"):
        registry.get_feature_group("p", "weather_hourly", 2)
    missing_name = r"'planes' not found in project 'p'; feature groups: airports, weather_hourly"
    with pytest.raises(NotFoundError, match=missing_name):
        registry.get_feature_group("p", "planes")
    with pytest.raises(NotFoundError, match="not found in project 'other'; the project has no feature groups"):
        registry.get_feature_group("other", "weather_hourly")
    with pytest.raises(InvalidDataError, match="project"):
        registry.get_feature_group("", "weather_hourly")


def test_projects_are_isolated(registry: Registry) -> None:
    registry.register_feature_group("a", weather())
    registry.register_feature_group("b", weather(primary_key=("origin",), description="Other team's weather"))
    assert registry.get_feature_group("a", "weather_hourly").primary_key == ("origin", "time_hour")
    assert registry.get_feature_group("b", "weather_hourly").primary_key == ("origin",)
    registry.record_commit("a", "weather_hourly", 1, commit(1))
    assert registry.commits("b", "weather_hourly", 1) == []
    assert [s.description for s in registry.list_feature_groups("b")] == ["Other team's weather"]


def test_list_feature_groups_sorted_by_name_then_version(registry: Registry) -> None:
    registry.register_feature_group("p", weather(version=2))
    registry.register_feature_group("p", FeatureGroupSpec("airports", primary_key=("faa",)))
    registry.register_feature_group("p", weather(version=1))
    assert [(s.name, s.version) for s in registry.list_feature_groups("p")] == [
        ("airports", 1),
        ("weather_hourly", 1),
        ("weather_hourly", 2),
    ]
    assert registry.list_feature_groups("nobody") == []


def test_update_features_replaces_the_schema(registry: Registry) -> None:
    registry.register_feature_group("p", weather())
    spec = registry.update_features(
        "p",
        "weather_hourly",
        1,
        [
            Feature("origin", "string"),
            Feature("time_hour", "timestamp[us, tz=UTC]", primary=False),  # flags follow the identity
            Feature("temp", "double"),
            Feature("humid", "double", "Relative humidity"),
        ],
    )
    assert [(f.name, f.type) for f in spec.features] == [
        ("origin", "string"),
        ("time_hour", "timestamp[us, tz=UTC]"),
        ("temp", "double"),
        ("humid", "double"),
    ]
    assert spec.feature("temp").description == "Temperature in F"  # kept: the new one was empty
    assert spec.feature("humid").description == "Relative humidity"
    assert spec.feature("wind_speed") is None  # dropped from the schema
    origin, time_hour = spec.feature("origin"), spec.feature("time_hour")
    assert origin.primary and origin.partition and not origin.event_time
    assert time_hour.primary and time_hour.event_time and not time_hour.partition
    assert registry.get_feature_group("p", "weather_hourly") == spec
    # reorder + re-add: positions follow the new list
    again = registry.update_features("p", "weather_hourly", 1, [Feature("humid", ""), Feature("wind_speed", "double")])
    assert [(f.name, f.type) for f in again.features] == [("humid", "double"), ("wind_speed", "double")]
    with pytest.raises(NotFoundError):
        registry.update_features("p", "weather_hourly", 9, [])


# ---------------------------------------------------------------------------------------------- commits


def test_commits_are_recorded_idempotently_oldest_first(registry: Registry) -> None:
    registry.register_feature_group("p", weather())
    for i in (3, 1, 2):
        registry.record_commit("p", "weather_hourly", 1, commit(i))
    registry.record_commit("p", "weather_hourly", 1, commit(2))  # same instant again: no duplicate
    registry.record_commit("p", "weather_hourly", 1, commit(3, row_count=42))  # values replaced
    commits = registry.commits("p", "weather_hourly", 1)
    assert [c.instant for c in commits] == [commit(i).instant for i in (1, 2, 3)]
    assert commits[0] == commit(1)
    assert commits[-1].row_count == 42
    assert all(c.committed_at.tzinfo == timezone.utc for c in commits)


def test_commit_record_validation_and_normalisation() -> None:
    record = CommitRecord("20240105103000123", "upsert", 1, 0, 0, datetime(2024, 1, 5, 10, 30))
    assert record.operation == "UPSERT"
    assert record.committed_at == datetime(2024, 1, 5, 10, 30, tzinfo=timezone.utc)  # naive = UTC
    local = datetime(2024, 1, 5, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert CommitRecord("20240105103000123", "DELETE", 0, 0, 1, local).committed_at == T0
    with pytest.raises(InvalidDataError, match="'2024': expected 17 digits"):
        CommitRecord("2024", "UPSERT", 0, 0, 0, T0)
    with pytest.raises(InvalidDataError, match="rows_deleted must be a non-negative integer, got -1"):
        CommitRecord("20240105103000123", "DELETE", 0, 0, -1, T0)
    with pytest.raises(InvalidDataError, match="operation"):
        CommitRecord("20240105103000123", "", 0, 0, 0, T0)


def test_commits_of_a_missing_group_raise(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="weather_hourly"):
        registry.record_commit("p", "weather_hourly", 1, commit(1))
    with pytest.raises(NotFoundError):
        registry.commits("p", "weather_hourly", 1)


def test_forget_commit_removes_the_commit_and_its_statistics(registry: Registry) -> None:
    """For a commit whose Hudi .commit file was lost and that the user gives up (FeatureGroup.abandon_commit)."""
    registry.register_feature_group("p", weather())
    for i in (1, 2):
        registry.record_commit("p", "weather_hourly", 1, commit(i))
        registry.record_statistics("p", "weather_hourly", 1, commit(i).instant, {"row_count": i})
    assert registry.forget_commit("p", "weather_hourly", 1, commit(2).instant) is True
    assert [c.instant for c in registry.commits("p", "weather_hourly", 1)] == [commit(1).instant]
    assert registry.statistics("p", "weather_hourly", 1) == {"row_count": 1}
    assert registry.forget_commit("p", "weather_hourly", 1, commit(2).instant) is False


@pytest.mark.parametrize("version", [True, False, 0, -1, 1.0, "1", 2**31])
def test_versions_must_be_positive_integers_not_bools(registry: Registry, version: object) -> None:
    """``True == 1`` in Python: a bool version would silently address version 1."""
    registry.register_feature_group("p", weather())
    message = rf"version must be a positive integer \(at most {2**31 - 1}\), got {re.escape(repr(version))}"
    with pytest.raises(InvalidDataError, match=message):
        weather(version=version)
    with pytest.raises(InvalidDataError, match=message):
        registry.get_feature_group("p", "weather_hourly", version)  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match=message):
        registry.register_feature_view("p", "delays", version, {"name": "delays"})  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match=message):
        registry.get_feature_view("p", "delays", version)  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match=message):
        registry.register_training_dataset("p", "delays", version, {"content_hash": "x"})  # type: ignore[arg-type]
    registry.register_feature_view("p", "delays", 1, {"name": "delays"})
    with pytest.raises(InvalidDataError, match=message):
        registry.get_training_dataset("p", "delays", 1, version)  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match=message):
        registry.list_training_datasets("p", "delays", version)  # type: ignore[arg-type]
    assert registry.list_feature_views("p") == [{"name": "delays"}]  # nothing stored by the refused calls


def test_names_longer_than_128_characters_are_refused() -> None:
    """Names become folder names (``<name>_v<version>``), which file systems limit to 255 bytes."""
    assert weather(name="w" * 128).name == "w" * 128
    with pytest.raises(InvalidDataError, match="is 300 characters long; at most 128"):
        weather(name="w" * 300)


@pytest.mark.parametrize("name", ["a-b", "1x", "é", "a.b", "My Col"])
def test_key_and_feature_names_must_be_avro_names(name: str) -> None:
    """Hudi stores every commit's schema as Avro: a name Avro refuses would make the table unreadable."""
    for changes in ({"primary_key": (name,)}, {"partition_key": (name,)}, {"event_time": name},
                    {"features": (Feature(name),)}):
        with pytest.raises(InvalidDataError, match=re.escape(repr(name)) + ".*Avro"):
            weather(**changes)


# ---------------------------------------------------------------------------------------------- statistics


def test_statistics_latest_by_instant_and_replace(registry: Registry) -> None:
    registry.register_feature_group("p", weather())
    assert registry.statistics("p", "weather_hourly", 1) is None
    registry.record_statistics("p", "weather_hourly", 1, commit(2).instant, {"row_count": 2})
    registry.record_statistics("p", "weather_hourly", 1, commit(1).instant, {"row_count": 1})
    assert registry.statistics("p", "weather_hourly", 1) == {"row_count": 2}  # latest instant, not latest write
    assert registry.statistics("p", "weather_hourly", 1, commit(1).instant) == {"row_count": 1}
    assert registry.statistics("p", "weather_hourly", 1, commit(9).instant) is None
    registry.record_statistics("p", "weather_hourly", 1, commit(2).instant, {"row_count": 20, "x": [1, None]})
    assert registry.statistics("p", "weather_hourly", 1) == {"row_count": 20, "x": [1, None]}


def test_statistics_must_be_json_safe(registry: Registry) -> None:
    registry.register_feature_group("p", weather())
    with pytest.raises(InvalidDataError, match="not JSON-safe"):
        registry.record_statistics("p", "weather_hourly", 1, commit(1).instant, {"mean": float("nan")})
    with pytest.raises(InvalidDataError, match="not JSON-safe"):
        registry.record_statistics("p", "weather_hourly", 1, commit(1).instant, {"when": datetime.now()})
    with pytest.raises(InvalidDataError, match="17 digits"):
        registry.record_statistics("p", "weather_hourly", 1, "latest", {})
    with pytest.raises(NotFoundError):
        registry.statistics("p", "nothing", 1)


# ---------------------------------------------------------------------------------------------- search


@pytest.fixture
def catalog(registry: Registry) -> Registry:
    registry.register_feature_group("p", weather())
    registry.register_feature_group(
        "p",
        FeatureGroupSpec(
            "flights_daily",
            primary_key=("carrier", "day"),
            description="Daily flight counts and delays per carrier; weather related delays included",
            tags=("flights",),
            features=(Feature("dep_delay", description="Mean departure delay in minutes"), Feature("n_flights")),
        ),
    )
    registry.register_feature_group(
        "p",
        FeatureGroupSpec(
            "airports",
            primary_key=("faa",),
            description="Airport locations",
            tags=("weather_station", "geo"),
            features=(Feature("alt", description="Altitude in feet"), Feature("tz")),
        ),
    )
    registry.register_feature_group(
        "other", FeatureGroupSpec("weather_hourly", primary_key=("k",), description="Another project's weather")
    )
    return registry


def test_search_ranks_name_over_tag_over_description(catalog: Registry) -> None:
    hits = [h for h in catalog.search("p", "weather") if h.kind == "feature_group"]
    assert [h.feature_group for h in hits] == ["weather_hourly", "airports", "flights_daily"]
    assert hits[0].matched_in == ("name", "tag", "description")
    assert hits[1].matched_in == ("tag",)  # a word of the tag "weather_station"
    assert hits[2].matched_in == ("description",)
    assert hits[0].score > hits[1].score > hits[2].score
    assert all(isinstance(h, SearchHit) and h.version == 1 for h in hits)


def test_search_exact_word_beats_substring(catalog: Registry) -> None:
    catalog.register_feature_group("p", FeatureGroupSpec("delays", primary_key=("k",), description="delay stats"))
    catalog.register_feature_group("p", FeatureGroupSpec("delay", primary_key=("k",)))
    hits = [h for h in catalog.search("p", "delay") if h.kind == "feature_group"]
    # "delay" equals the whole name > is a word of... > substring of "delays"
    assert [h.feature_group for h in hits[:2]] == ["delay", "delays"]
    assert hits[0].score > hits[1].score


def test_search_feature_hits(catalog: Registry) -> None:
    hits = catalog.search("p", "TEMP")  # case-insensitive
    assert hits[0] == SearchHit(
        "feature", "weather_hourly", 1, "temp", ("name", "description"), hits[0].score, "Temperature in F"
    )
    feature_hits = catalog.search("p", "minutes")
    assert [(h.feature_group, h.feature, h.matched_in) for h in feature_hits] == [
        ("flights_daily", "dep_delay", ("description",))
    ]


def test_search_needs_every_word(catalog: Registry) -> None:
    # both words in the group
    hits = catalog.search("p", "hourly nyc")
    assert [(h.kind, h.feature_group) for h in hits] == [("feature_group", "weather_hourly")]
    # one word in the feature, one in its group: a feature hit, and not a group hit
    hits = catalog.search("p", "weather altitude")
    assert [(h.kind, h.feature_group, h.feature) for h in hits] == [("feature", "airports", "alt")]
    assert hits[0].matched_in == ("description",)
    # words spread over two different groups: nothing
    assert catalog.search("p", "altitude minutes") == []


def test_search_no_hits_empty_query_limit_and_wildcards(catalog: Registry) -> None:
    assert catalog.search("p", "submarine") == []
    assert catalog.search("p", "   ") == []
    assert catalog.search("p", "%") == []  # LIKE wildcards are literal
    assert catalog.search("p", "_") != []  # "_" is literally in names such as weather_hourly
    assert len(catalog.search("p", "e", limit=2)) == 2
    assert catalog.search("p", "weather", limit=0) == []


def test_search_is_per_project(catalog: Registry) -> None:
    hits = catalog.search("other", "weather")
    assert [(h.feature_group, h.description) for h in hits] == [("weather_hourly", "Another project's weather")]
    assert catalog.search("nobody", "weather") == []


def test_search_sees_updates_and_every_version(catalog: Registry) -> None:
    catalog.register_feature_group("p", weather(version=2, description="Hourly weather, v2 with visibility"))
    catalog.update_features("p", "weather_hourly", 2, [Feature("visib", "double", "Visibility in miles")])
    hits = catalog.search("p", "visibility")
    # equal scores (a description word each): the group comes first
    assert [(h.kind, h.version, h.feature) for h in hits] == [("feature_group", 2, None), ("feature", 2, "visib")]
    versions = {h.version for h in catalog.search("p", "weather_hourly") if h.kind == "feature_group"}
    assert versions == {1, 2}


# ---------------------------------------------------------------------------------------------- processes


# The worker runs from source in each spawned process: importing it from this module would run the
# ``fs_dagster`` package __init__, which imports Dagster (seconds per process). The registry is plain Python, so
# the worker loads only ``fs_dagster.core`` -- and checks on the way that the core does not pull Dagster in.
WORKER = """
import sys, types
from datetime import datetime, timedelta, timezone
package = types.ModuleType("fs_dagster")
package.__path__ = [{package_dir!r}]
sys.modules["fs_dagster"] = package
from fs_dagster.core.registry import CommitRecord, Registry
from fs_dagster.core.specs import FeatureGroupSpec

T0 = datetime(2024, 1, 5, 10, 30, tzinfo=timezone.utc)

def commit(i):
    moment = T0 + timedelta(seconds=i)
    instant = moment.strftime("%Y%m%d%H%M%S") + f"{{moment.microsecond // 1000:03d}}"
    return CommitRecord(instant, "UPSERT", rows_inserted=i, rows_updated=1, rows_deleted=0, committed_at=moment)

registry = Registry({url!r})
try:
    for g in range({groups}):
        # every worker registers the same groups (racing to create them) and records its own commits
        spec = FeatureGroupSpec(f"group_{{g}}", primary_key=("k",), description="w{worker}")
        registry.register_feature_group("p", spec)
        for c in range({commits}):
            record = commit({worker} * 1000 + c)
            registry.record_commit("p", f"group_{{g}}", 1, record)
            registry.record_commit("p", f"group_{{g}}", 1, record)  # idempotent under contention too
        registry.record_statistics("p", f"group_{{g}}", 1, commit({worker} * 1000).instant, {{"worker": {worker}}})
        registry.search("p", "group")
finally:
    registry.dispose()
assert "dagster" not in sys.modules, "fs_dagster.core imported dagster"
"""


def test_four_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    import fs_dagster

    url = f"sqlite:///{tmp_path / 'registry.db'}"  # no tables yet: the workers race to create them too
    workers, groups, commits = 4, 3, 10
    package_dir = str(Path(fs_dagster.__file__).parent)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=exec,
            args=(
                WORKER.format(package_dir=package_dir, url=url, worker=w, groups=groups, commits=commits),
                {"__name__": "registry_worker"},  # a namespace of its own
            ),
        )
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * workers
    with Registry(url) as registry:
        assert [s.name for s in registry.list_feature_groups("p")] == [f"group_{g}" for g in range(groups)]
        for g in range(groups):
            instants = [c.instant for c in registry.commits("p", f"group_{g}", 1)]
            expected = sorted(commit(w * 1000 + c).instant for w in range(workers) for c in range(commits))
            assert instants == expected
            assert registry.statistics("p", f"group_{g}", 1) == {"worker": workers - 1}


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "registry.db"
    garbage.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(FeatureStoreError, match=r"registry\.db.*cannot create tables"):
        Registry(f"sqlite:///{garbage}")
