"""What an upstream asset last materialized, read from the Dagster instance: the exact training dataset a model
asset trains on, the exact model version a deployment asset serves, and whether that materialization passed its
blocking checks.

The model and deployment assets do not pass values through an IO manager; the upstream's latest materialization
(its metadata and data version) names the registry entry, and the registry entry is checked against the data
version, so nothing is picked "latest by accident".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey

from fs_dagster.errors import FeatureStoreFailure

DATA_VERSION_TAG = "dagster/data_version"


@dataclass(frozen=True)
class Materialized:
    """One materialization of an asset: its event-log storage id, run, data version and metadata (plain values)."""

    key: AssetKey
    storage_id: int
    run_id: str
    data_version: str | None
    metadata: dict[str, Any]

    def require(self, name: str) -> Any:
        if name not in self.metadata:
            raise FeatureStoreFailure(
                description=f"the latest materialization of {self.key.to_user_string()} (run {self.run_id}) has no "
                f"metadata {name!r}; materialize it again with this version of fs-dagster"
            )
        return self.metadata[name]


def latest_materialization(context: Any, key: AssetKey) -> Materialized:
    """The latest materialization of ``key`` in the run's instance.

    Raises:
        FeatureStoreFailure: the asset has never been materialized (naming it).
    """
    records = context.instance.fetch_materializations(key, limit=1).records
    if not records:
        raise FeatureStoreFailure(
            description=f"{key.to_user_string()} has not been materialized yet; materialize it first"
        )
    record = records[0]
    materialization = record.asset_materialization
    metadata = {name: getattr(value, "value", value) for name, value in (materialization.metadata or {}).items()}
    return Materialized(key, record.storage_id, record.run_id, (materialization.tags or {}).get(DATA_VERSION_TAG),
                        metadata)


def blocking_check_problems(context: Any, materialized: Materialized,
                            known: Sequence[AssetCheckKey] = ()) -> list[str]:
    """Why ``materialized`` may not be used downstream: each blocking check of its asset that failed with
    severity ERROR, never ran, or last ran against another materialization (empty list: every one passed).

    Dagster stops a run's downstream steps after a failed blocking check, but the failed materialization stays
    the asset's latest: an asset launched later on its own must check for itself.

    Args:
        known: blocking checks known from the asset's definition; the code location's other blocking checks on
            the asset (separate ``@asset_check``s) are added when the run has its repository (not in
            ``dagster.materialize``, whose job only knows the selected assets).
    """
    blocking = set(known)
    try:
        graph = context.repository_def.asset_graph
    except Exception:  # noqa: BLE001 - no repository in ephemeral runs (dagster.materialize)
        graph = None
    if graph is not None and graph.has(materialized.key):
        blocking |= {k for k in graph.get_check_keys_for_assets({materialized.key}) if _is_blocking(graph, k)}
    if not blocking:
        return []
    ordered = sorted(blocking, key=lambda k: k.name)
    records = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(ordered)
    problems = []
    for check_key in ordered:
        record = records.get(check_key)
        evaluation = record.event.asset_check_evaluation if record is not None and record.event else None
        if evaluation is None:
            problems.append(f"blocking check {check_key.name} has no result for it")
            continue
        target = evaluation.target_materialization_data
        if target is None or target.storage_id != materialized.storage_id:
            problems.append(f"blocking check {check_key.name} last ran against another materialization")
        elif not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR:
            text = (evaluation.description or "").strip()
            problems.append(f"blocking check {check_key.name} failed" + (f": {text}" if text else ""))
    return problems


def _is_blocking(graph: Any, key: AssetCheckKey) -> bool:
    node = graph.get(key)
    return bool(getattr(node, "blocking", False))
