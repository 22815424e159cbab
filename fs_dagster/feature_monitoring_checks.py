"""Feature monitoring as asset checks on feature-group assets (Hopsworks' feature monitoring, without a model): your
:class:`~fs_dagster.core.monitoring.feature_monitoring.FeatureMonitoringRule` s evaluated on the statistics the
registry records per commit (mean, std, min, max, null share, distinct count, histogram distance), the latest
commit against the one before it.

One check per feature group with rules, named ``feature_monitoring``. It runs after the group materializes when the
run selects the asset (checks of a selected asset run with it, in the UI, the CLI and ``dagster.materialize``), or
alone ("Execute check"). The verdict decides the result: OK passes, WARN / ERROR fail with that severity, naming
each rule that tripped with the values before and after. Metadata: ``feature_monitoring/<feature>/<metric>`` (the
value at the commit) and ``.../change``, which the UI plots per evaluation, the commits compared, and a JSON report
under ``<root>/<project>/reports/feature_monitoring/<group>_v<version>/``.

Not blocking by default: the commit is already made when the check runs (a feature group asset commits in its
body), so a blocking check could only stop the assets downstream in the same run; pass ``blocking=True`` for that.
Evidently is not needed (the statistics are the registry's).

Example:
    checks = build_feature_monitoring_checks(FEATURE_GROUP_SPECS, {
        "weather_hourly": [FeatureMonitoringRule("temp", "mean", max_change=10.0),
                           FeatureMonitoringRule("visib", "null_share", max_change=0.02, severity="ERROR")],
    })
"""

from __future__ import annotations

from typing import Mapping, Sequence

from dagster import AssetCheckResult, AssetChecksDefinition, AutomationCondition, asset_check

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError
from fs_dagster.core.monitoring.feature_monitoring import FeatureMonitoringRule, monitor_feature_group
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.errors import as_failure
from fs_dagster.translator import FeatureGroupTranslator
from fs_dagster.verdict_checks import report_metadata, verdict_check_result

FEATURE_MONITORING_CHECK = "feature_monitoring"


def build_feature_monitoring_checks(
    specs: Sequence[FeatureGroupSpec],
    rules_by_group: Mapping[str, Sequence[FeatureMonitoringRule]],
    *,
    baseline: str | None = None,
    check_name: str = FEATURE_MONITORING_CHECK,
    blocking: bool = False,
    save_reports: bool = True,
    automation_condition: AutomationCondition | None = None,
    translator: FeatureGroupTranslator | None = None,
    resource_key: str = "feature_store",
) -> list[AssetChecksDefinition]:
    """Feature-monitoring checks on the feature-group assets of ``specs`` (see module doc).

    Args:
        specs: the feature groups (their assets' keys come from ``translator``).
        rules_by_group: rules per feature-group name; a group without rules gets no check.
        baseline: the commit the latest one is compared with: None (the previous commit with statistics),
            ``"first"``, or a commit instant.
        blocking: stop the assets downstream of the group in the same run when the check fails with ERROR.
        save_reports: write each evaluation as a JSON report under the store root.

    Raises:
        InvalidDataError: rules for a group not in ``specs``, or something that is not a rule (named).

    Examples:
        .. code-block:: python

            defs = Definitions(assets=[...], asset_checks=build_feature_monitoring_checks(
                FEATURE_GROUP_SPECS, {"weather_hourly": [FeatureMonitoringRule("temp", "mean", max_change=10.0)]}))
    """
    translator = translator or FeatureGroupTranslator()
    by_name = {spec.name: spec for spec in specs}
    unknown = sorted(set(rules_by_group) - set(by_name))
    if unknown:
        raise InvalidDataError(f"feature monitoring rules for unknown feature group(s) {unknown}; groups: "
                               f"{sorted(by_name)}")
    checks = []
    for name, rules in rules_by_group.items():
        rules = list(rules)
        for rule in rules:
            if not isinstance(rule, FeatureMonitoringRule):
                raise InvalidDataError(f"feature monitoring of {name}: rules must be FeatureMonitoringRule objects, "
                                       f"got {rule!r}")
        if rules:
            checks.append(_check_for(by_name[name], rules, baseline, check_name, blocking, save_reports,
                                     automation_condition, translator, resource_key))
    return checks


def _check_for(spec: FeatureGroupSpec, rules: list[FeatureMonitoringRule], baseline: str | None, check_name: str,
               blocking: bool, save_reports: bool, automation_condition: AutomationCondition | None,
               translator: FeatureGroupTranslator, resource_key: str) -> AssetChecksDefinition:
    asset_key = translator.get_asset_spec(spec).key
    listed = "; ".join(f"{r.label} change > {r.max_change:g}{' (relative)' if r.relative else ''}: {r.severity}"
                       for r in rules)
    against = "the previous commit with statistics" if baseline is None else baseline

    @asset_check(
        asset=asset_key,
        name=check_name,
        blocking=blocking,
        description=f"Feature monitoring of {spec.name}: the latest commit's statistics against {against}: {listed}",
        automation_condition=automation_condition,
        required_resource_keys={resource_key},
    )
    def _feature_monitoring(context) -> AssetCheckResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        try:
            fg = store.get_feature_group(spec.name, spec.version)
            result = monitor_feature_group(fg, rules, baseline=baseline)
            paths = result.save(store) if save_reports else None
        except FeatureStoreError as error:
            raise as_failure(error) from error
        metadata = {**result.metadata(), **(report_metadata(paths, "feature_monitoring") if paths else {})}
        metadata.pop("dagster/uri", None)  # (a check's metadata: the asset's URI stays the group's own)
        context.log.info("feature monitoring of %s at %s: %s", spec.name, result.commit, result.verdict)
        return verdict_check_result(asset_key, check_name, result.verdict, result.describe(), metadata)

    return _feature_monitoring
