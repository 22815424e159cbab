"""The monitoring loop's trigger: a sensor that requests a retraining run (training dataset, model, deployment) when
a drift (or quality) check's latest evaluation failed with severity ERROR.

Each tick reads the latest completed evaluation of every watched check from the instance. An evaluation that
failed with the chosen severity (ERROR by default; WARN never retrains unless asked) and that the cursor has not
seen gives one run request of ``targets``; the cursor keeps the newest evaluation seen per check, so each failed
evaluation retrains once (across daemon restarts too: the run key names the evaluation), and a check that is
evaluated again and fails again retrains again.

The run is an ordinary run of the targets, so everything else is the assets' own contract:

- the training-dataset asset builds from the feature groups' latest commits: the data the deployment served
  (whose features had to be in the store to be served) is in it;
- the model asset trains on exactly that dataset and evaluates its blocking validation checks (``not worse than
  the deployed version`` on the new holdout, minimum quality overall and per slice);
- Dagster skips the deployment step when a blocking check fails, and the deployment asset itself refuses a model
  version whose blocking checks did not pass: nothing is redeployed unless the new version is validated. A
  validated version is rolled out without refusing a request and smoke-tested over HTTP (rolled back if that fails).

Stopped by default, like anything that starts or switches servers: turn it on in the UI (Automation) or with
``default_status=DefaultSensorStatus.RUNNING``.

Example:
    drift_retraining = build_drift_retraining_sensor(
        AssetCheckKey(delays_drift.key, "drift"),
        targets=[delays_training_data, delay_model, delays_api],
        run_config={"execution": {"config": {"in_process": {}}}})
"""

from __future__ import annotations

import json
from typing import Any, Literal, Mapping, Sequence

from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from fs_dagster.core.errors import InvalidDataError

TAG_CHECK = "fs_dagster/retraining_check"
TAG_EVALUATION = "fs_dagster/retraining_evaluation"
HISTORY = 20  # recent executions read per check and tick (planned ones included: a re-evaluation in progress)


def _check_keys(checks: Any) -> list[AssetCheckKey]:
    # (keys are tuples underneath: test for one key first)
    single = isinstance(checks, (AssetCheckKey, AssetKey, AssetsDefinition, str)) or not isinstance(checks,
                                                                                                  (list, tuple))
    items = [checks] if single else list(checks)
    keys: list[AssetCheckKey] = []
    for item in items:
        if isinstance(item, AssetCheckKey):
            keys.append(item)
        elif isinstance(item, AssetsDefinition) and item.check_keys:
            keys.extend(sorted(item.check_keys, key=lambda k: k.to_user_string()))
        else:
            raise InvalidDataError(f"build_drift_retraining_sensor: watch AssetCheckKeys or assets with checks, got "
                                   f"{item!r}")
    return list(dict.fromkeys(keys))


def _target_keys(targets: Sequence[Any]) -> list[AssetKey]:
    if not targets:
        raise InvalidDataError("build_drift_retraining_sensor: give the assets to run (training data, model, "
                               "deployment)")
    return [t.key if isinstance(t, AssetsDefinition) else AssetKey.from_coercible(t) for t in targets]


def latest_evaluation(instance: Any, key: AssetCheckKey) -> tuple[int, Any] | None:
    """(storage id, AssetCheckEvaluation) of the newest completed evaluation of ``key``, or None (executions that
    are planned or never reported a result are passed over)."""
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=HISTORY)
    for record in records:  # newest first
        evaluation = record.event.asset_check_evaluation if record.event is not None else None
        if evaluation is not None:
            return record.id, evaluation
    return None


def build_drift_retraining_sensor(
    checks: AssetCheckKey | AssetsDefinition | Sequence[AssetCheckKey | AssetsDefinition],
    *,
    targets: Sequence[AssetsDefinition | AssetKey | str],
    name: str = "drift_retraining",
    severity: Literal["ERROR", "WARN"] = "ERROR",
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    description: str | None = None,
) -> SensorDefinition:
    """A sensor requesting a run of ``targets`` once per failed evaluation of ``checks`` (see module doc).

    Args:
        checks: the checks to watch: keys, or assets whose checks are all watched (a drift asset).
        targets: what to run: the training-dataset asset, the model asset and the deployment asset.
        severity: the least severity that retrains: ``"ERROR"`` (default) or ``"WARN"``.
        run_config: the run's config (e.g. the in-process executor: one process imports the libraries once).
        tags: added to the run (besides ``fs_dagster/retraining_check`` and ``fs_dagster/retraining_evaluation``).

    Examples:
        .. code-block:: python

            build_drift_retraining_sensor(delays_drift, targets=[delays_training_data, delay_model, delays_api])
    """
    keys = _check_keys(checks)
    if not keys:
        raise InvalidDataError("build_drift_retraining_sensor: no check to watch")
    target_keys = _target_keys(targets)
    if severity not in ("ERROR", "WARN"):
        raise InvalidDataError(f"severity must be 'ERROR' or 'WARN', got {severity!r}")
    severities = {AssetCheckSeverity.ERROR} | ({AssetCheckSeverity.WARN} if severity == "WARN" else set())
    watched = ", ".join(k.to_user_string() for k in keys)

    @sensor(
        name=name,
        asset_selection=target_keys,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=description or (
            f"Retrains and redeploys ({', '.join(k.to_user_string() for k in target_keys)}) once per evaluation of "
            f"{watched} that fails with severity {severity}{' or ERROR' if severity == 'WARN' else ''}; the model's "
            "blocking validation checks decide whether the deployment moves."),
    )
    def _retraining(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        cursor = dict(seen)
        failed: list[tuple[AssetCheckKey, int, Any]] = []
        for key in keys:
            latest = latest_evaluation(context.instance, key)
            name_ = key.to_user_string()
            if latest is None or latest[0] <= seen.get(name_, -1):
                continue
            storage_id, evaluation = latest
            cursor[name_] = storage_id
            if not evaluation.passed and evaluation.severity in severities:
                failed.append((key, storage_id, evaluation))
        if not failed:
            return SensorResult(skip_reason=SkipReason(f"no new failed {severity} evaluation of {watched}"),
                                cursor=json.dumps(cursor, sort_keys=True))
        first_key, first_id, _ = failed[0]
        reasons = "; ".join(f"{k.to_user_string()}: {(e.description or '').strip()[:300]}" for k, _, e in failed)
        context.log.info("retraining requested: %s", reasons)
        request = RunRequest(
            run_key="|".join(f"{k.to_user_string()}@{i}" for k, i, _ in failed),
            asset_selection=target_keys,
            run_config=dict(run_config or {}),
            tags={**dict(tags or {}), TAG_CHECK: first_key.to_user_string(), TAG_EVALUATION: str(first_id)},
        )
        return SensorResult(run_requests=[request], cursor=json.dumps(cursor, sort_keys=True))

    return _retraining
