"""A registry locked by another process (a second process holding ``BEGIN IMMEDIATE`` on the SQLite file): the wait
is bounded by ``registry_timeout``, then a clear error names the file; an insert keeps its offline commit, says
so, and the registry catches up once the lock is gone."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from fs_dagster import FeatureStore
from fs_dagster.core.errors import RegistryUnavailableError
from fs_dagster.core.feature_group import RegistrySyncError
from fs_dagster.core.registry import Registry

HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # hold the write lock until the test closes stdin
connection.execute("ROLLBACK")
"""


@contextmanager
def registry_locked(database: Path) -> Iterator[None]:
    """Another process holds the SQLite file's write lock inside the block."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(database)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        try:
            holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(timeout=10)


def _frame(ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "v": [float(i) for i in ids]})


@pytest.mark.timeout(120)  # the old code waited 5 x 30 s and then reported success
def test_insert_while_the_registry_is_locked_fails_clearly_keeps_the_commit_and_catches_up(tmp_path) -> None:
    root = tmp_path / "store"
    fs = FeatureStore(root=root, project="p", registry_timeout=1.0)
    fg = fs.get_or_create_feature_group("g", primary_key=["id"])
    fg.insert(_frame([1]))
    database = root / "registry.db"
    with registry_locked(database):
        started = time.monotonic()
        with pytest.raises(RegistrySyncError) as caught:
            fg.insert(_frame([2]))
        assert time.monotonic() - started < 10  # bounded by registry_timeout (1 s) plus the write itself
        message = str(caught.value)
        assert f"offline commit {caught.value.instant} is kept" in message
        assert f"registry {database} is locked by another process" in message and "1 s (registry_timeout)" in message
        assert "catches up at the next write" in message
        assert isinstance(caught.value.__cause__, RegistryUnavailableError)
        assert caught.value.result.rows_inserted == 1
        assert fg.latest_commit() == caught.value.instant and fg.count() == 2  # the commit stands

        # getting an existing group takes no write lock; registering a new one names the file
        assert fs.get_or_create_feature_group("g").spec.primary_key == ("id",)
        with pytest.raises(RegistryUnavailableError, match=rf"registry {database} is locked .*registering"):
            fs.get_or_create_feature_group("h", primary_key=["id"])

    fg.sync_registry()  # lock gone: the registry records the missed commit
    assert [c.instant for c in fs.registry.commits("p", "g", 1)][-1] == caught.value.instant
    assert fg.insert(_frame([3])).rows_inserted == 1


@pytest.mark.timeout(60)
def test_registry_timeout_is_configurable_per_registry_and_resource(tmp_path) -> None:
    from fs_dagster import FeatureStoreResource

    database = tmp_path / "registry.db"
    Registry(f"sqlite:///{database}").dispose()  # tables exist
    registry = Registry(f"sqlite:///{database}", timeout=0.2)
    with registry_locked(database):
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError, match=r"waited 0.2 s"):
            registry.update_features("p", "g", 1, ())
        assert time.monotonic() - started < 5
    registry.dispose()
    resource = FeatureStoreResource(root=str(tmp_path / "store"), registry_timeout=2.5)
    assert resource.get_store().registry.timeout == 2.5
