"""A stored feature-group definition changes only explicitly: get-or-create keeps it (arguments left out keep the
stored values, given ones must agree), ``FeatureGroup.update`` changes settings (a full online sync when online
turns on), and a Dagster asset's spec is the definition (changed settings applied, synced and reported)."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from dagster import materialize

from fs_dagster import (
    FeatureGroupIOManager,
    FeatureGroupSpec,
    FeatureStore,
    FeatureStoreResource,
    InvalidDataError,
    feature_group_asset,
)
from fs_dagster.core.online.embedded import EmbeddedValkey

T = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture()
def root(tmp_path):
    path = tmp_path / "store"
    yield path
    EmbeddedValkey(path).stop()  # the embedded server of this root, by its recorded pid


def _rows(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sensor", "ts", "value"])


def _sensors(fs: FeatureStore, **kwargs):
    return fs.get_or_create_feature_group("sensors", primary_key=["sensor"], event_time="ts", **kwargs)


def test_get_or_create_with_defaults_keeps_the_stored_online_flag(root) -> None:
    """The issue's case: a notebook's get-or-create without ``online_enabled`` used to switch an online group
    off for every process, and later writes skipped Valkey without an error."""
    fs = FeatureStore(root=root, project="p")
    _sensors(fs, online_enabled=True, online_ttl_seconds=3600, description="Sensors").insert(_rows(("a", T, 1.0)))

    other = FeatureStore(root=root, project="p")  # another process, restating the group without the flag
    fg = _sensors(other)
    assert fg.spec.online_enabled and fg.spec.online_ttl_seconds == 3600
    assert other.registry.get_feature_group("p", "sensors", 1).online_enabled
    fg.insert(_rows(("a", T + timedelta(hours=1), 2.0)))
    assert fs.get_feature_group("sensors").get_online([("a",)])[0]["value"] == 2.0  # the write reached Valkey

    # an existing group can be got by name alone (no keys restated)
    assert other.get_or_create_feature_group("sensors").spec == fg.spec


@pytest.mark.parametrize(
    ("argument", "stored", "requested", "remedy"),
    [
        ("online_enabled", True, False, r"update\(online_enabled=False\)"),
        ("online_ttl_seconds", 3600, 60, r"update\(online_ttl_seconds=60\)"),
        ("statistics_enabled", True, False, r"update\(statistics_enabled=False\)"),
        ("event_time", "ts", "ts2", "register a new version"),
        ("partition_key", (), ["site"], "register a new version"),
    ],
)
def test_get_or_create_refuses_a_conflicting_argument(root, argument, stored, requested, remedy) -> None:
    fs = FeatureStore(root=root, project="p")
    _sensors(fs, online_enabled=True, online_ttl_seconds=3600)
    before = fs.registry.get_feature_group("p", "sensors", 1)
    shown = tuple(requested) if isinstance(requested, list) else requested
    values = re.escape(f"{argument}={stored!r}, not {shown!r}; ")
    with pytest.raises(InvalidDataError, match=rf"'sensors' version 1 .*{values}.*{remedy}"):
        fs.get_or_create_feature_group("sensors", **{argument: requested})
    assert fs.registry.get_feature_group("p", "sensors", 1) == before  # nothing changed


def test_get_or_create_keeps_stored_descriptions_and_says_so(root, caplog) -> None:
    fs = FeatureStore(root=root, project="p")
    _sensors(fs, description="Sensors", tags=["iot"], features={"value": "Reading"})
    with caplog.at_level(logging.WARNING, logger="fs_dagster.core.store"):
        fg = _sensors(fs, description="Something else", tags=["x"], features={"value": "Other"})
    assert (fg.spec.description, fg.spec.tags, fg.spec.feature("value").description) == ("Sensors", ("iot",), "Reading")
    assert "keeps its registered description, tags, features['value'].description" in caplog.text
    assert "update(" in caplog.text


def test_update_turns_online_on_with_a_full_sync_and_off_again(root) -> None:
    fs = FeatureStore(root=root, project="p")
    fg = _sensors(fs)
    fg.insert(_rows(("a", T, 1.0), ("b", T, 2.0)))
    fg.insert(_rows(("c", T, 3.0)))
    assert not (root / "online").exists()  # an offline group never touched the online store

    fg.update(online_enabled=True, description="Now online", features={"value": "Reading in volts"})
    assert fg.last_online_sync.full and fg.last_online_sync.keys_written == 3  # rows of every commit
    assert [r["value"] for r in fg.get_online([("a",), ("c",)])] == [1.0, 3.0]
    other = FeatureStore(root=root, project="p").get_feature_group("sensors")  # every process sees the change
    assert other.spec.online_enabled and other.spec.description == "Now online"
    assert other.spec.feature("value").description == "Reading in volts"
    assert any(hit.feature == "value" for hit in fs.search("volts"))  # search text follows the description
    other.insert(_rows(("a", T + timedelta(hours=1), 5.0)))
    assert fg.get_online([("a",)])[0]["value"] == 5.0

    fg.update(online_ttl_seconds=120)  # rewrites every key with the new TTL
    key = next(fs.online_store.scan_keys("fs:p:sensors:*|*"))
    assert 0 < fs.online_store.client.ttl(key) <= 120

    fg.update(online_enabled=False)
    with pytest.raises(InvalidDataError, match="not online-enabled"):
        fg.get_online([("a",)])
    assert not FeatureStore(root=root, project="p").get_feature_group("sensors").spec.online_enabled

    with pytest.raises(InvalidDataError, match="primary_key cannot change .* new version"):
        fg.update(primary_key=("other",))
    with pytest.raises(InvalidDataError, match="cannot update colour"):
        fg.update(colour="red")
    with pytest.raises(InvalidDataError, match="online_enabled must be True or False"):
        fg.update(online_enabled="yes")


def _asset(spec: FeatureGroupSpec, frame: pd.DataFrame):
    @feature_group_asset(spec)
    def sensors() -> pd.DataFrame:
        return frame

    return sensors


def test_a_dagster_spec_is_the_definition_and_a_changed_online_flag_is_applied_and_reported(root) -> None:
    store = FeatureStoreResource(root=str(root), project="p")
    resources = {"feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}
    spec = FeatureGroupSpec("sensors", primary_key=("sensor",), event_time="ts")
    materialize([_asset(spec, _rows(("a", T, 1.0), ("b", T, 2.0)))], resources=resources)

    # the code turns online on: the flag is applied, every row (not only this run's) goes online, it is reported
    result = materialize([_asset(replace(spec, online_enabled=True), _rows(("c", T, 3.0)))], resources=resources)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["fs_dagster/definition_changes"].value == "online_enabled: False -> True"
    assert metadata["fs_dagster/online_sync"].value == "full"
    fg = store.get_store().get_feature_group("sensors")
    assert fg.spec.online_enabled
    assert [r["value"] for r in fg.get_online([("a",), ("b",), ("c",)])] == [1.0, 2.0, 3.0]

    # unchanged code: nothing to report, incremental sync
    result = materialize([_asset(replace(spec, online_enabled=True), _rows(("d", T, 4.0)))], resources=resources)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert "fs_dagster/definition_changes" not in metadata and metadata["fs_dagster/online_sync"].value == "incremental"

    # the code turns it off again: applied and reported as well
    result = materialize([_asset(spec, _rows(("e", T, 5.0)))], resources=resources)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["fs_dagster/definition_changes"].value == "online_enabled: True -> False"
    assert not FeatureStore(root=root, project="p").get_feature_group("sensors").spec.online_enabled
