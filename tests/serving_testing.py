"""Teardown of tests that deploy a model: every server they started is stopped, and proven gone."""

from __future__ import annotations

from pathlib import Path

from fs_dagster import FeatureStore
from fs_dagster.core.errors import NotFoundError
from fs_dagster.core.online.embedded import EmbeddedValkey
from fs_dagster.core.serving import processes


def stop_serving(fs: FeatureStore | None, deployment: str, root: Path | str) -> None:
    """Stops ``deployment`` if ``fs`` has it and checks that no process of its server survived, then stops the
    embedded Valkey of ``root`` (also when the check fails). ``fs`` None: nothing was deployed."""
    try:
        try:
            dep = fs.get_deployment(deployment) if fs is not None else None
        except NotFoundError:  # never deployed (an earlier step failed)
            dep = None
        if dep is not None:
            pid = dep.status().pid
            dep.stop()
            assert pid is None or processes.group_members(pid) == [], f"a process of {deployment} survived stop()"
    finally:
        EmbeddedValkey(root).stop()
