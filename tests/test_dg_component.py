"""``FeatureStoreComponent``: feature groups, a feature view and its training dataset declared in YAML (the example
project ``examples/yaml_features``), listed and run by the real ``dg`` CLI, giving the same assets as the Python
decorators; ``dg scaffold defs`` writes a starter that loads and materializes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey

from fs_dagster import FeatureStore, feature_group_asset
from fs_dagster.components.feature_store_component import FeatureGroupModel, FeatureStoreComponent

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "yaml_features"
COMPONENT = "fs_dagster.components.FeatureStoreComponent"
IN_PROCESS = json.dumps({"execution": {"config": {"in_process": {}}}})  # one process per run: seconds, not tens


def _dg_binary() -> str | None:
    beside = Path(sys.executable).with_name("dg")
    return str(beside) if beside.exists() else shutil.which("dg")


pytestmark = pytest.mark.skipif(_dg_binary() is None, reason="dg (dagster-dg-cli, dev extra) is not installed")


class Project:
    """A copy of a dg project under tmp_path, with its own Dagster home and feature store root."""

    def __init__(self, root: Path, tmp_path: Path) -> None:
        self.root, self.store = root, tmp_path / "store"
        home = tmp_path / "dagster_home"
        home.mkdir(exist_ok=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.env = {**os.environ, "DAGSTER_HOME": str(home), "FS_DAGSTER_ROOT": str(self.store), "COLUMNS": "200",
                    "NO_COLOR": "1"}

    def dg(self, *args: str, timeout: float = 300) -> str:
        run = subprocess.run([_dg_binary(), *args], cwd=self.root, env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        assert run.returncode == 0, f"dg {' '.join(args)} failed ({run.returncode}):\n{run.stdout[-3000:]}\n" \
                                    f"{run.stderr[-5000:]}"
        return run.stdout

    def stop_online(self) -> None:
        from fs_dagster.core.online.embedded import EmbeddedValkey

        EmbeddedValkey(self.store).stop()


@pytest.fixture()
def example(tmp_path):
    root = tmp_path / "yaml_features"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", ".fs_store"))
    project = Project(root, tmp_path)
    yield project
    project.stop_online()


def test_dg_lists_the_component_and_the_yaml_definitions(example) -> None:
    components = json.loads(example.dg("list", "components", "--json"))["items"]
    [ours] = [c for c in components if c["key"] == COMPONENT]
    assert "feature views and training datasets" in ours["summary"]

    defs = json.loads(example.dg("list", "defs", "--json"))
    assets = {a["asset_key"]: a for a in defs["assets"]}
    assert set(assets) == {"orders", "customers", "returns", "returns_training_data"}
    assert assets["returns_training_data"]["dependency_keys"] == ["customers", "orders", "returns"]
    assert assets["orders"]["owners"] == [{"team": "shop"}] and assets["orders"]["source"].endswith("defs.yaml:2")
    checks = {c["key"] for c in defs["asset_checks"]}
    assert checks == {"customers:pandera_schema", "returns_training_data:training_data_quality"}


def test_the_yaml_project_runs_through_dg_launch(example) -> None:
    example.dg("launch", "--assets", "orders", "--partition-range", "2024-01-01...2024-01-03",
               "--config-json", IN_PROCESS)
    example.dg("launch", "--assets", "customers", "--config-json", IN_PROCESS)
    example.dg("launch", "--assets", "returns,returns_training_data", "--config-json", IN_PROCESS)

    store = FeatureStore(root=example.store, project="shop")
    orders = store.get_feature_group("orders")
    assert orders.count() == 36  # every order of the CSV, read by the SQL file for its partitions
    assert {f.name: f.type for f in orders.spec.features if f.name in ("amount", "returned")} == {
        "amount": "double", "returned": "bool"}
    assert orders.spec.feature("amount").description == "Order total (EUR)" and orders.spec.tags == (
        "domain=shop", "entity=order")
    customers = store.get_feature_group("customers").read()
    assert list(customers["segment"]) == ["new", "regular", "vip"]
    td = store.get_feature_view("returns").get_training_dataset()
    assert sum(td.row_counts.values()) == 36 and set(td.row_counts) == {"train", "test"}
    assert td.transformations is not None and "segment" in td.transformations.to_dict()["params"]


def test_a_yaml_feature_group_is_the_same_asset_as_the_decorated_one(example, monkeypatch) -> None:
    import yaml

    attributes = yaml.safe_load((example.root / "yaml_features/defs/shop/defs.yaml").read_text())["attributes"]
    [orders_yaml] = [g for g in attributes["feature_groups"] if g["name"] == "orders"]
    model = FeatureGroupModel.model_validate(orders_yaml)
    component = FeatureStoreComponent.resolve_from_dict({"feature_groups": [orders_yaml]})

    class Context:  # what build_defs reads of a ComponentLoadContext
        path = example.root / "yaml_features/defs/shop"

    [from_yaml] = component.build_defs(Context()).assets

    @feature_group_asset(model.spec(), partitions_def=model.partitions.build())
    def orders() -> None: ...

    yaml_spec, python_spec = from_yaml.specs_by_key[AssetKey("orders")], orders.specs_by_key[AssetKey("orders")]
    for attribute in ("key", "group_name", "kinds", "tags", "owners", "code_version", "description", "metadata"):
        assert getattr(yaml_spec, attribute) == getattr(python_spec, attribute), attribute
    assert from_yaml.partitions_def == orders.partitions_def
    assert from_yaml.op.outs["result"].dagster_type.display_name == "FeatureGroupFrame_orders_v1"


def test_bad_yaml_is_refused_naming_the_group() -> None:
    with pytest.raises(Exception, match="feature group orders: give exactly one of function, sql, sql_file"):
        FeatureStoreComponent.resolve_from_dict({"feature_groups": [
            {"name": "orders", "primary_key": ["id"], "sql": "SELECT 1 AS id", "function": "x:y"}]})
    component = FeatureStoreComponent.resolve_from_dict({"feature_groups": [
        {"name": "orders", "primary_key": ["id"], "function": "yaml_features_missing.module:fn"}]})

    class Context:
        path = Path(".")

    with pytest.raises(Exception, match="feature group orders: function: cannot import module 'yaml_features_missing"):
        component.build_defs(Context())


def test_store_settings_not_given_in_yaml_come_from_the_environment(tmp_path, monkeypatch) -> None:
    """``store:`` fields left out take the resource's defaults, environment first (as everywhere else), instead of
    a fixed ``.fs_store`` that ignored ``FS_DAGSTER_ROOT``."""
    monkeypatch.setenv("FS_DAGSTER_ROOT", str(tmp_path / "from_env"))
    monkeypatch.setenv("FS_DAGSTER_ONLINE_URL", "valkey://cache.internal:6380/2")

    class Context:
        path = tmp_path

    def resource(store: dict) -> object:
        defs = FeatureStoreComponent.resolve_from_dict({"store": store}).build_defs(Context())
        return defs.resources["feature_store"]

    given_project = resource({"project": "shop"})
    assert (given_project.root, given_project.project) == (str(tmp_path / "from_env"), "shop")
    assert given_project.online_url == "valkey://cache.internal:6380/2"
    explicit = resource({"root": str(tmp_path / "yaml_root"), "online_url": "valkey://other:6379/0",
                         "registry_url": "sqlite:///" + str(tmp_path / "r.db")})
    assert (explicit.root, explicit.project) == (str(tmp_path / "yaml_root"), "default")
    assert explicit.online_url == "valkey://other:6379/0" and explicit.registry_url.endswith("r.db")


def _empty_project(tmp_path: Path) -> Project:
    """A new dg project with nothing in it (what ``create-dagster project`` makes, minus the packaging)."""
    root = tmp_path / "starter_project"
    package = root / "starter_project"
    (package / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "starter-project"\nversion = "0.1.0"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        '[tool.dg.project]\nroot_module = "starter_project"\n')
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(
        "from pathlib import Path\n\nfrom dagster import definitions, load_from_defs_folder\n\n\n@definitions\n"
        "def defs():\n    return load_from_defs_folder(path_within_project=Path(__file__).parent)\n")
    return Project(root, tmp_path)


def test_dg_scaffold_writes_a_starter_that_loads_and_materializes(tmp_path) -> None:
    project = _empty_project(tmp_path)
    try:
        project.dg("scaffold", "defs", COMPONENT, "features")
        written = (project.root / "starter_project/defs/features/defs.yaml").read_text()
        assert written.startswith(f"type: {COMPONENT}\n") and "example_features" in written
        assert "# A feature view over feature groups" in written

        assets = {a["asset_key"] for a in json.loads(project.dg("list", "defs", "--json"))["assets"]}
        assert assets == {"example_features"}
        project.dg("launch", "--assets", "example_features", "--config-json", IN_PROCESS)
        # the starter names no root: the run's store is $FS_DAGSTER_ROOT's (the project's environment sets it)
        assert not (project.root / ".fs_store").exists()
        fg = FeatureStore(root=project.store).get_feature_group("example_features")
        assert fg.read().sort_values("entity_id")["value"].tolist() == [0.5, 1.5]
    finally:
        project.stop_online()
