"""``FeatureGroupTranslator``: how a feature group becomes a Dagster asset spec and asset check spec.

Subclass and override one method to change naming, groups or tags; start from the default spec and use
``spec.replace_attributes(...)`` / ``spec.merge_attributes(...)``:

Example:
    class MyTranslator(FeatureGroupTranslator):
        def get_asset_spec(self, spec):
            return super().get_asset_spec(spec).replace_attributes(key=AssetKey(["features", spec.name]))
"""

from __future__ import annotations

import json

from dagster import AssetCheckSpec, AssetKey, AssetSpec

from fs_dagster.core.specs import FeatureGroupSpec

METADATA_SPEC_KEY = "fs_dagster/feature_group"
PANDERA_CHECK_NAME = "pandera_schema"


class FeatureGroupTranslator:
    """Default names: asset key ``[<feature group name>]``, group ``feature_groups``, kinds hudi (+ valkey)."""

    def get_asset_spec(self, spec: FeatureGroupSpec) -> AssetSpec:
        kinds = {"hudi", "duckdb"} | ({"valkey"} if spec.online_enabled else set())
        owners = [spec.owner] if spec.owner and ("@" in spec.owner or spec.owner.startswith("team:")) else []
        return AssetSpec(
            key=AssetKey([spec.name]),
            description=spec.description or f"Feature group {spec.name} (version {spec.version})",
            group_name="feature_groups",
            kinds=kinds,
            owners=owners,
            tags={f"fs_dagster.tag/{t}": "" for t in spec.tags if _valid_tag(t)},
            code_version=f"v{spec.version}",
            metadata={
                METADATA_SPEC_KEY: json.dumps(spec.to_dict()),
                "fs_dagster/version": spec.version,
                "fs_dagster/primary_key": ", ".join(spec.primary_key),
                "fs_dagster/event_time": spec.event_time or "",
            },
        )

    def get_asset_check_spec(self, spec: FeatureGroupSpec, asset_key: AssetKey) -> AssetCheckSpec:
        return AssetCheckSpec(
            name=PANDERA_CHECK_NAME,
            asset=asset_key,
            blocking=True,
            description=f"Pandera schema of {spec.name}: rows failing an error-level check are never written.",
        )


def _valid_tag(tag: str) -> bool:
    return bool(tag) and len(tag) <= 63 and all(c.isalnum() or c in "-_." for c in tag)


def spec_from_metadata(metadata: dict) -> FeatureGroupSpec | None:
    """The FeatureGroupSpec a translator stored in an asset's definition metadata, if any."""
    raw = metadata.get(METADATA_SPEC_KEY)
    if raw is None:
        return None
    value = getattr(raw, "value", raw)  # MetadataValue wrappers
    data = json.loads(value) if isinstance(value, str) else value
    return FeatureGroupSpec.from_dict(data)
