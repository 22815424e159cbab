"""Online calls that used to fail in confusing ways (real embedded Valkey):

* a long-lived FeatureStore whose embedded server was restarted on another port (by another process) follows it:
  the next call finds the server where the root's state file says it is, reconnects and succeeds;
* an online call on a group that is not online-enabled is refused before the online store is touched, so no
  embedded server is started (it would outlive the process) and no state file appears.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from fs_dagster import FeatureStore, InvalidDataError
from fs_dagster.core.online.consistency import check_consistency
from fs_dagster.core.online.embedded import EmbeddedValkey

T = datetime(2024, 1, 1, tzinfo=timezone.utc)
RESTART = "import sys; from fs_dagster.core.online.embedded import EmbeddedValkey; EmbeddedValkey(sys.argv[1]).ensure_running()"


@pytest.fixture()
def root(tmp_path):
    path = tmp_path / "store"
    yield path
    EmbeddedValkey(path).stop()  # the embedded server of this root, by its recorded pid


def _rows(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sensor", "ts", "value"])


@pytest.mark.timeout(120)
def test_a_long_lived_store_follows_the_embedded_server_to_its_new_port(root) -> None:
    fs = FeatureStore(root=root, project="p")
    fg = fs.get_or_create_feature_group("sensors", primary_key=["sensor"], event_time="ts", online_enabled=True)
    fg.insert(_rows(("a", T, 1.0), ("b", T, 2.0)))
    view = fs.get_or_create_feature_view("v", 1, fg.select(["value"]))
    assert view.get_feature_vector({"sensor": "a"}) == [1.0]
    old_port = EmbeddedValkey(root).status().port

    EmbeddedValkey(root).stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (the old connections are in TIME_WAIT)
        squatter.bind(("127.0.0.1", old_port))  # bound, not listening: the old port refuses and is not reused
        subprocess.run([sys.executable, "-c", RESTART, str(root)], check=True, timeout=60)  # another process
        new_port = EmbeddedValkey(root).status().port
        assert new_port != old_port

        assert view.get_feature_vector({"sensor": "a"}) == [1.0]  # the same store and view: data kept (AOF)
        assert fs.online_store.address == f"127.0.0.1:{new_port}"
        assert fg.get_online([("b",)])[0]["value"] == 2.0
        fg.insert(_rows(("a", T + timedelta(hours=1), 3.0)))  # writes (the incremental sync) reach it too
        assert view.get_feature_vectors([{"sensor": "a"}, {"sensor": "b"}]) == [[3.0], [2.0]]


def test_online_calls_on_an_offline_group_fail_before_touching_the_online_store(root) -> None:
    fs = FeatureStore(root=root, project="p")
    fg = fs.get_or_create_feature_group("sensors", primary_key=["sensor"], event_time="ts")
    fg.insert(_rows(("a", T, 1.0)))
    view = fs.get_or_create_feature_view("v", 1, fg.select(["value"]))
    calls = {
        "get_online": lambda: fg.get_online([("a",)]),
        "get_feature_vector": lambda: view.get_feature_vector({"sensor": "a"}),
        "get_feature_vectors": lambda: view.get_feature_vectors([{"sensor": "a"}] * 100),
        "sync_online": lambda: fg.sync_online(full=True),
        "check_consistency": lambda: check_consistency(fg),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidDataError, match=r"sensors:1 is not online-enabled.*update\(online_enabled=True\)"):
            call()
        assert not (root / "online").exists(), f"{name} touched the online store"
    assert EmbeddedValkey(root).status() is None
