"""The README's guide "Add fs-dagster to your Dagster project" runs as written.

The test reads the guide's fenced ``python`` blocks out of README.md and executes them, in order, as one module
(what the guide calls ``definitions.py``), with ``FS_DAGSTER_ROOT`` / ``FS_DAGSTER_PROJECT`` pointing at a temporary
store. It then materializes the assets with ``dagster.materialize`` (real Hudi tables, DuckDB point-in-time joins,
the root's embedded Valkey) and checks what the guide promises. The model part (a real seldon-core microservice)
is a separate test. Servers started here (the embedded Valkey, the deployment) are stopped by PID at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInvalidConfigError, EnvVar, instance_for_test, materialize

from fs_dagster.core.online.embedded import EmbeddedValkey
from serving_testing import stop_serving

README = Path(__file__).resolve().parents[1] / "README.md"
GUIDE_HEADING = "## Add fs-dagster to your Dagster project"
PROJECT = "shop"
MODEL_BLOCKS = 1  # the guide's last python block: model and deployment


def section(heading: str) -> str:
    """The README text from ``heading`` to the next level-2 heading."""
    text = README.read_text()
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else len(text)]


def python_blocks(text: str) -> list[str]:
    """The fenced ```python blocks of ``text``, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


@dataclass
class Guide:
    namespace: dict[str, Any]
    root: Path
    instance: Any

    def run(self, names: list[str]):
        """Materializes the guide's assets of those names, with the resources its ``defs`` names."""
        ns = self.namespace
        defs_assets = {a.key.to_user_string(): a for a in ns["defs"].assets}
        assert set(names) <= set(defs_assets), f"{names} not all in the guide's Definitions"
        return materialize([defs_assets[n] for n in names], resources=ns["defs"].resources, instance=self.instance)

    def materialization(self, key: str):
        return self.instance.get_latest_materialization_event(AssetKey(key)).asset_materialization


def test_the_guide_has_the_blocks_the_tests_run() -> None:
    blocks = python_blocks(section(GUIDE_HEADING))
    assert len(blocks) == 6, [b.splitlines()[0] for b in blocks]
    assert "build_model_asset" in blocks[-1] and "build_deployment_asset" in blocks[-1]


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme_guide") / "fs_store"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FS_DAGSTER_ROOT", str(root))
        env.setenv("FS_DAGSTER_PROJECT", PROJECT)
        namespace: dict[str, Any] = {"__name__": "definitions"}
        try:
            with instance_for_test() as instance:
                yield Guide(namespace, root, instance)
        finally:
            stop_serving(namespace["store"].get_store() if "store" in namespace else None, "returns_api", root)


def test_the_guide_builds_definitions_and_materializes_them(guide: Guide) -> None:
    blocks = python_blocks(section(GUIDE_HEADING))
    before_serving, serving = blocks[:4], blocks[4]
    for block in before_serving:
        exec(compile(block, "README.md (guide)", "exec"), guide.namespace)
    ns = guide.namespace
    assert isinstance(ns["store"].root, EnvVar)  # configured from the environment, as the guide shows
    result = guide.run(["customers", "orders", "order_volume", "order_returns", "order_returns_training_data"])
    assert result.success

    # feature groups: real Hudi commits under the root the environment named, in the project it named
    fs = ns["store"].get_store()
    assert (fs.root, fs.project) == (guide.root, PROJECT)
    assert len(fs.get_feature_group("orders").read()) == 600
    assert len(fs.get_feature_group("customers").read()) == 80  # a time series: every profile change kept
    assert guide.materialization("order_volume").metadata["orders"].value == 600

    # the view and its point-in-time training data, split by time
    fv = fs.get_feature_view("order_returns", 1)
    assert fv.serving_keys == ["order_id", "customer_id"]
    td = fv.get_training_dataset()
    split_at = ns["SPLIT_AT"]
    assert sum(td.row_counts.values()) == 600
    orders = fs.get_feature_group("orders").read().set_index("order_id")
    expected_train = int((orders["ordered_at"] < split_at).sum())
    assert td.row_counts == {"train": expected_train, "test": 600 - expected_train}
    frame = td.read("train", transformed=False, with_keys=True)
    # as of each order's time: the day-0 profile before day 30, the day-30 profile from then on
    day_30 = ns["T0"] + timedelta(days=30)
    assert (frame["ordered_at"] < day_30).any() and (frame["ordered_at"] >= day_30).any()
    expected = frame["customer_id"] * 20 + (frame["ordered_at"] >= day_30) * 30
    assert (frame["tenure_days"] == expected).all()
    assert (frame["ordered_at"] < split_at).all()
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks if c.check_name == "training_data_quality"] == [True]

    # serving with the training dataset's fitted transformations
    exec(compile(serving, "README.md (guide, serving)", "exec"), guide.namespace)
    vector = ns["vector"]
    assert set(vector) == {"basket_value", "items", "tenure_days", "orders_30d"}
    assert vector["tenure_days"] == 3 * 20 + 30  # the customer's latest profile
    mean, std = td.transformations.params["basket_value"]["mean"], td.transformations.params["basket_value"]["std"]
    train_baskets = frame["basket_value"]
    assert (mean, std) == pytest.approx((train_baskets.mean(), train_baskets.std(ddof=0)))
    assert vector["basket_value"] == pytest.approx((orders.loc[599, "basket_value"] - mean) / std)
    assert len(ns["vectors"]) == 1 and ns["vectors"]["tenure_days"].tolist() == [5 * 20 + 30]


def test_the_guide_model_is_validated_and_deployed(guide: Guide) -> None:
    """The guide's model block: the model asset trains on the dataset version just built and passes its checks;
    the deployment serves it over HTTP (a real seldon-core microservice on loopback)."""
    if "defs" not in guide.namespace or "vector" not in guide.namespace:
        pytest.skip("needs the guide's earlier blocks (the previous test)")
    exec(compile(python_blocks(section(GUIDE_HEADING))[-MODEL_BLOCKS], "README.md (guide, model)", "exec"),
         guide.namespace)
    result = guide.run(["order_returns_model", "returns_api"])
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks
    fs = guide.namespace["store"].get_store()
    dep = fs.get_deployment("returns_api")
    model = fs.get_model_registry().get_model("order_returns_model")
    td = fs.get_feature_view("order_returns", 1).get_training_dataset()
    assert model.training_dataset["version"] == td.version, model.training_dataset
    answer = dep.predict([{"order_id": 599, "customer_id": 3}])
    assert answer["model_version"] == model.version and len(answer["predictions"]) == 1


def test_online_store_config_is_exported_from_the_package() -> None:
    import fs_dagster
    from fs_dagster import OnlineStoreConfig
    from fs_dagster.core.online.online_store import OnlineStoreConfig as core_config

    assert OnlineStoreConfig is core_config and "OnlineStoreConfig" in fs_dagster.__all__
    assert OnlineStoreConfig(url="valkey://127.0.0.1:6379/0", key_prefix="fs:").url == "valkey://127.0.0.1:6379/0"


def test_get_store_outside_dagster_reads_env_var_fields(tmp_path, monkeypatch) -> None:
    """``store.get_store()`` in a script or notebook (the guide's serving step): ``EnvVar`` fields hold the
    variable's name until something resolves them; the store must use the value, never a folder named after the
    variable in the working directory."""
    from fs_dagster import FeatureStoreResource

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FS_DAGSTER_ROOT", str(tmp_path / "store"))
    resource = FeatureStoreResource(root=EnvVar("FS_DAGSTER_ROOT"), project="shop")
    fs = resource.get_store()
    assert fs.root == tmp_path / "store" and fs.project == "shop"
    assert resource.get_store() is fs  # cached
    assert not (tmp_path / "FS_DAGSTER_ROOT").exists()

    monkeypatch.delenv("FS_DAGSTER_ROOT")
    with pytest.raises(DagsterInvalidConfigError, match="FS_DAGSTER_ROOT"):  # Dagster's own error naming the unset variable
        FeatureStoreResource(root=EnvVar("FS_DAGSTER_ROOT"), project="shop").get_store()
    assert not (tmp_path / "FS_DAGSTER_ROOT").exists()


QUICKSTART_HEADING = "## Quickstart: use fs-dagster in your own Dagster project"
QUICKSTART_ROOT = "/data/fs_store"  # the Quickstart's root; the test writes under a temporary folder instead


def test_the_quickstart_runs_as_written(tmp_path) -> None:
    """The Quickstart's blocks, in order, with the names they leave to the reader (``load_weather``, ``df``, ...)
    bound to small real frames: the Dagster definitions materialize a month of weather (online-enabled, so it is
    served from Valkey), the plain-Python tour runs every call, the training-dataset asset builds."""
    import numpy as np
    import pandas as pd
    from dagster import AssetsDefinition
    from sklearn.dummy import DummyRegressor

    blocks = [b.replace(QUICKSTART_ROOT, str(tmp_path / "fs_store")) for b in python_blocks(section(QUICKSTART_HEADING))]
    assert len(blocks) == 3 and all(QUICKSTART_ROOT not in b for b in blocks)
    start = pd.Timestamp("2013-01-01", tz="UTC")

    def load_weather(window_start, window_end) -> pd.DataFrame:
        hours = pd.date_range(window_start, window_end, freq="h", inclusive="left", tz="UTC")
        return pd.DataFrame({"origin": np.repeat(["EWR", "JFK"], len(hours)), "time_hour": list(hours) * 2,
                             "temp": np.linspace(20.0, 40.0, 2 * len(hours))})

    flights = pd.DataFrame({"tailnum": ["N14228", "N24211"] * 20, "origin": ["EWR", "JFK"] * 20,
                            "time_hour": [start + pd.Timedelta(hours=5 * i) for i in range(40)]})
    namespace: dict[str, Any] = {
        "load_weather": load_weather,
        "df": pd.DataFrame({"tailnum": ["N14228", "N24211", "N10156"], "valid_from": [start - pd.Timedelta(days=1)] * 3,
                            "seats": [149, 55, 200], "year_built": [1999, 2005, 2004]}),
        "retired": pd.DataFrame({"tailnum": ["N10156"]}),
        "training_frame": pd.DataFrame({"seats": [149.0, 55.0]}),
        "entries": [{"tailnum": "N24211", "origin": "JFK"}],
        "flights_df": flights,
        "clf": DummyRegressor().fit(pd.DataFrame({"seats": [0.0], "year_built": [0], "temp": [0.0]}), [0.0]),
    }
    try:
        exec(compile(blocks[0], "README.md (quickstart)", "exec"), namespace)
        assert namespace["weather_spec"].online_enabled
        defs = namespace["defs"]
        with instance_for_test() as instance:
            result = materialize(list(defs.assets), resources=defs.resources, instance=instance,
                                 partition_key="2013-01-01")
        assert result.success

        exec(compile(blocks[1], "README.md (quickstart, plain Python)", "exec"), namespace)
        fs, fv, td = namespace["fs"], namespace["fv"], namespace["td"]
        assert fs.get_feature_group("aircraft").read()["tailnum"].tolist() == ["N14228", "N24211"]  # one deleted
        vector = fv.get_feature_vector({"tailnum": "N14228", "origin": "EWR"}, return_type="dict")
        assert vector["year_built"] == 1999 and vector["temp"] is not None  # weather served online (online_enabled)
        assert sum(td.row_counts.values()) == 40 and td.recreate().content_hash == td.content_hash
        features = namespace["features"]
        assert len(features) == 40 and features["temp"].notna().all()  # every flight hour has its weather

        exec(compile(blocks[2], "README.md (quickstart, training dataset asset)", "exec"), namespace)
        asset_def = namespace["delays_training_data"]
        assert isinstance(asset_def, AssetsDefinition) and asset_def.key == AssetKey("delays_training_data")
    finally:
        EmbeddedValkey(tmp_path / "fs_store").stop()
