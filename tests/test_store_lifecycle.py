"""FeatureStore as a context manager, close(), and stopping the embedded Valkey from Python (real servers)."""

from __future__ import annotations

import os

import pandas as pd
from valkey_servers import start_valkey

from fs_dagster import FeatureStore
from fs_dagster.core.online.embedded import EmbeddedValkey
from fs_dagster.core.online.online_store import OnlineStoreConfig


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _online_group(fs: FeatureStore):
    fg = fs.get_or_create_feature_group("things", primary_key=["id"], online_enabled=True)
    fg.insert(pd.DataFrame({"id": [1, 2], "x": [1.5, 2.5]}))
    return fg


def test_close_and_reopen_and_stop_the_embedded_server(tmp_path) -> None:
    root = tmp_path / "store"
    try:
        with FeatureStore(root=root, project="p") as fs:
            fg = _online_group(fs)
            assert fg.get_online([[2]])[0]["x"] == 2.5
            client = fs.online_store.client
        # closed on exit: the pool holds no open connection; the store reopens on use
        pool = client.connection_pool
        assert not pool._in_use_connections and all(c._sock is None for c in pool._available_connections)
        assert fs.get_feature_group("things").get_online([[1]])[0]["x"] == 1.5
        server = EmbeddedValkey(fs.root).status()
        assert server is not None and _alive(server.pid)
        assert fs.stop_embedded_online_store() is True
        assert not _alive(server.pid)
        assert EmbeddedValkey(fs.root).status() is None
        assert fs.stop_embedded_online_store() is False  # (none running)
        # the next online read starts it again, with the data it saved
        assert fs.get_feature_group("things").get_online([[2]])[0]["x"] == 2.5
        restarted = EmbeddedValkey(fs.root).status()
        assert restarted is not None and restarted.pid != server.pid
    finally:
        EmbeddedValkey(root).stop()


def test_an_external_server_is_never_stopped(tmp_path) -> None:
    external = start_valkey(tmp_path / "external")
    try:
        fs = FeatureStore(root=tmp_path / "store", project="p", online=OnlineStoreConfig(url=external.url()))
        _online_group(fs)
        assert fs.stop_embedded_online_store() is False
        assert external.alive()
        assert fs.get_feature_group("things").get_online([[1]])[0]["x"] == 1.5
        assert EmbeddedValkey(fs.root).status() is None  # (no embedded server was ever started)
    finally:
        external.stop()
