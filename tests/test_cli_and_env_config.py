"""Env-first configuration (``FeatureStoreResource`` takes the CLI's variables) and a CLI that says what it
looked at when it finds nothing, without creating a registry as a side effect."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

import pandas as pd
import pytest
from dagster import EnvVar, materialize

from fs_dagster import FeatureGroupIOManager, FeatureGroupSpec, FeatureStore, FeatureStoreResource, feature_group_asset
from fs_dagster.cli import main
from fs_dagster.core.environment import (
    ENV_ONLINE_PASSWORD,
    ENV_ONLINE_URL,
    ENV_PROJECT,
    ENV_REGISTRY_URL,
    ENV_ROOT,
    RelativeRootWarning,
)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
ALL_ENV = (ENV_ROOT, ENV_PROJECT, ENV_REGISTRY_URL, ENV_ONLINE_URL, ENV_ONLINE_PASSWORD)


@pytest.fixture()
def clean_env(monkeypatch):
    for name in ALL_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"sensor": ["a", "b"], "ts": [T0] * 2, "value": [1.0, 2.0]})


def test_resource_fields_default_to_the_cli_variables(clean_env, tmp_path) -> None:
    clean_env.setenv(ENV_ROOT, str(tmp_path / "store"))
    clean_env.setenv(ENV_PROJECT, "flights")
    clean_env.setenv(ENV_REGISTRY_URL, f"sqlite:///{tmp_path / 'elsewhere.db'}")
    clean_env.setenv(ENV_ONLINE_URL, "valkey://127.0.0.1:6390/2")
    clean_env.setenv(ENV_ONLINE_PASSWORD, "s3cret")
    resource = FeatureStoreResource()
    assert (resource.root, resource.project) == (str(tmp_path / "store"), "flights")
    assert resource.registry_url == f"sqlite:///{tmp_path / 'elsewhere.db'}"
    store = resource.get_store()
    assert store.online_config.url == "valkey://127.0.0.1:6390/2" and store.online_config.password == "s3cret"
    # explicit values win over the environment
    assert FeatureStoreResource(project="other").project == "other"

    # a materialization with the defaults writes where the CLI (same variables) then reads
    @feature_group_asset(FeatureGroupSpec("readings", primary_key=("sensor",), event_time="ts"))
    def readings() -> pd.DataFrame:
        return _frame()

    resources = {"feature_store": resource, "fs_io_manager": FeatureGroupIOManager(feature_store=resource)}
    assert materialize([readings], resources=resources).success
    assert (tmp_path / "elsewhere.db").exists() and not (tmp_path / "store" / "registry.db").exists()
    assert main(["list"]) == 0


def test_unset_variables_keep_the_documented_defaults(clean_env) -> None:
    resource = FeatureStoreResource()
    assert (resource.root, resource.project, resource.registry_url, resource.online_url, resource.online_password) \
        == (".fs_store", "default", None, None, None)


def test_a_relative_root_warns_and_an_absolute_one_does_not(clean_env, tmp_path) -> None:
    clean_env.chdir(tmp_path)
    with pytest.warns(RelativeRootWarning, match=rf"root 'rel_store' is relative.*{tmp_path}.*{ENV_ROOT}"):
        FeatureStoreResource(root="rel_store").get_store()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RelativeRootWarning)
        FeatureStoreResource(root=str(tmp_path / "abs_store")).get_store()


def test_envvar_still_works_for_the_root(clean_env, tmp_path) -> None:
    clean_env.setenv("MY_ROOT", str(tmp_path / "via_envvar"))

    @feature_group_asset(FeatureGroupSpec("readings", primary_key=("sensor",), event_time="ts"))
    def readings() -> pd.DataFrame:
        return _frame()

    resource = FeatureStoreResource(root=EnvVar("MY_ROOT"), project="p")
    resources = {"feature_store": resource, "fs_io_manager": FeatureGroupIOManager(feature_store=resource)}
    assert materialize([readings], resources=resources).success
    assert (tmp_path / "via_envvar" / "registry.db").exists()


def test_empty_list_names_the_project_and_registry_and_the_projects_it_has(clean_env, tmp_path, capsys) -> None:
    root = tmp_path / "store"
    FeatureStore(root=root, project="flights").get_or_create_feature_group(
        "weather", primary_key=["origin"], event_time="ts")
    assert main(["--root", str(root), "--project", "flight", "list"]) == 0
    out = capsys.readouterr().out
    assert f"no feature groups in project 'flight' of registry {root / 'registry.db'}" in out
    assert "projects there: flights" in out and ENV_PROJECT in out
    assert main(["--root", str(root), "--project", "flights", "search", "nothing-like-this"]) == 0
    assert "no matches for 'nothing-like-this' in project 'flights'" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["list"], ["search", "x"], ["commits", "weather"], ["stats", "weather"],
                                     ["verify", "weather"], ["deployment", "list"]])
def test_reading_a_missing_store_creates_nothing(clean_env, tmp_path, capsys, command) -> None:
    root = tmp_path / "nowhere"
    assert main(["--root", str(root), *command]) == 2
    assert f"no feature store at {root} (the folder does not exist)" in capsys.readouterr().err
    assert not root.exists()


def test_a_postgresql_store_without_its_registry_url_says_so(clean_env, tmp_path, capsys) -> None:
    """The tables of a store whose registry is on PostgreSQL, read without --registry-url: no empty registry.db."""
    root = tmp_path / "store"
    store = FeatureStore(root=root, project="flights", registry_url=f"sqlite:///{tmp_path / 'pg_stand_in.db'}")
    store.get_or_create_feature_group("weather", primary_key=["origin"], event_time="ts").insert(
        pd.DataFrame({"origin": ["JFK"], "ts": [T0], "temp": [1.0]}))
    assert main(["--root", str(root), "--project", "flights", "list"]) == 2
    err = capsys.readouterr().err
    assert f"no registry at {root / 'registry.db'}, but the root holds tables of project(s) flights" in err
    assert "--registry-url" in err and ENV_REGISTRY_URL in err
    assert not (root / "registry.db").exists()
    clean_env.setenv(ENV_REGISTRY_URL, f"sqlite:///{tmp_path / 'pg_stand_in.db'}")
    assert main(["--root", str(root), "--project", "flights", "list"]) == 0
    assert "weather" in capsys.readouterr().out
