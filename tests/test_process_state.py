"""process_state.alive: one answer for the embedded Valkey and local deployments (real processes, and a stand-in
/proc for the cases a real one cannot be made to show)."""

from __future__ import annotations

import os
import subprocess
import sys

from fs_dagster.core import process_state
from fs_dagster.core.process_state import alive, state_and_group


def test_running_zombie_and_reaped_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert alive(child.pid) and state_and_group(child.pid)[0] in "RSD"
    finally:
        child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
    assert state_and_group(child.pid)[0] == "Z" and not alive(child.pid)
    child.wait()
    assert not alive(child.pid) and state_and_group(child.pid) is None


def test_a_command_name_with_spaces_and_an_unreadable_proc(tmp_path, monkeypatch) -> None:
    pid = os.getpid()  # (takes signals: kill 0 succeeds)
    (tmp_path / str(pid)).mkdir()
    (tmp_path / str(pid) / "stat").write_text(f"{pid} (a name) with) spaces) Z 1 4242 4242 0 -1\n")
    monkeypatch.setattr(process_state, "PROC", tmp_path)
    assert state_and_group(pid) == ("Z", 4242) and not alive(pid)
    (tmp_path / str(pid) / "stat").unlink()
    assert state_and_group(pid) is None and alive(pid)  # /proc hidden: it takes signals, so it runs
