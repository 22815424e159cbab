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
import re
from dataclasses import replace
from typing import Any, Iterable, Mapping

from dagster import AssetCheckSpec, AssetKey, AssetSpec, MetadataValue

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.dataframe_type import spec_column_schema

METADATA_SPEC_KEY = "fs_dagster/feature_group"
PANDERA_CHECK_NAME = "pandera_schema"

# Dagster's rule for definition tags (asset tags): a key of letters, digits, '_', '.', '-' (at most 63, optionally
# after a 'prefix/' of the same kind), a value of the same characters (at most 63, may be empty)
_TAG_KEY = re.compile(r"([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}")
_TAG_VALUE = re.compile(r"[A-Za-z0-9_.-]{0,63}")


def dagster_tags(tags: Iterable[str], where: str) -> dict[str, str]:
    """Asset tags from feature-store tags: ``"domain=weather"`` becomes the tag ``domain: weather``, a bare
    ``"weather"`` the key-only tag ``weather`` (empty value, shown as a label).

    Raises:
        InvalidDataError: naming the tag and ``where``, when Dagster cannot hold it (characters other than letters,
            digits, ``_ . -``; longer than 63; a ``dagster/`` key, which is Dagster's own) or a key comes twice.
    """
    out: dict[str, str] = {}
    for tag in tags:
        key, _, value = str(tag).partition("=")
        key, value = key.strip(), value.strip()
        if not _TAG_KEY.fullmatch(key) or not _TAG_VALUE.fullmatch(value) or key.startswith("dagster/"):
            raise InvalidDataError(
                f"{where}: tag {tag!r} cannot be a Dagster tag; write 'key=value' or 'key' with letters, digits, "
                "'_', '.', '-' (at most 63 each; the key may start with 'prefix/', not 'dagster/')"
            )
        if key in out:
            raise InvalidDataError(f"{where}: tag key {key!r} appears twice ({key}={out[key]!r}, {tag!r})")
        out[key] = value
    return out


def valid_owners(owners: Iterable[str | None]) -> list[str]:
    """Owners Dagster accepts: e-mail addresses and ``team:`` names (others are not shown)."""
    return [o for o in owners if o and ("@" in o or o.startswith("team:"))]


class FeatureGroupTranslator:
    """Default names: asset key ``[<feature group name>]``, group ``feature_groups``, kinds hudi (+ valkey).

    Metadata of the definition: the spec as JSON (``fs_dagster/feature_group``; its feature types are the declared
    ones, or the pandera schema's when :func:`feature_group_asset` is given one) and, when the spec lists its
    columns, ``dagster/column_schema``. Tags: see :func:`dagster_tags`.
    """

    def get_asset_spec(self, spec: FeatureGroupSpec) -> AssetSpec:
        kinds = {"hudi", "duckdb"} | ({"valkey"} if spec.online_enabled else set())
        metadata: dict[str, Any] = {
            METADATA_SPEC_KEY: MetadataValue.json(spec.to_dict()),
            "fs_dagster/primary_key": ", ".join(spec.primary_key),
            "fs_dagster/event_time": spec.event_time or "",
        }
        if spec.features and any(f.type for f in spec.features):
            metadata["dagster/column_schema"] = spec_column_schema(spec)
        return AssetSpec(
            key=AssetKey([spec.name]),
            description=spec.description or f"Feature group {spec.name} (version {spec.version})",
            group_name="feature_groups",
            kinds=kinds,
            owners=valid_owners([spec.owner]),
            tags=dagster_tags(spec.tags, f"feature group {spec.name}"),
            code_version=f"v{spec.version}",
            metadata=metadata,
        )

    def get_asset_key(self, spec: FeatureGroupSpec) -> AssetKey:
        """The asset key of a feature group (e.g. a stored one, for column lineage): ``get_asset_spec``'s key.
        Tags play no part in keys, so a stored spec with tags Dagster cannot hold still has a key."""
        return self.get_asset_spec(replace(spec, tags=())).key

    def get_asset_check_spec(self, spec: FeatureGroupSpec, asset_key: AssetKey) -> AssetCheckSpec:
        return AssetCheckSpec(
            name=PANDERA_CHECK_NAME,
            asset=asset_key,
            blocking=True,
            description=f"Pandera schema of {spec.name}: rows failing an error-level check are never written.",
        )


def spec_from_metadata(metadata: Mapping[str, Any]) -> FeatureGroupSpec | None:
    """The FeatureGroupSpec a translator stored in an asset's definition metadata, if any."""
    raw = metadata.get(METADATA_SPEC_KEY)
    if raw is None:
        return None
    value = getattr(raw, "value", raw)  # MetadataValue wrappers
    data = json.loads(value) if isinstance(value, str) else value
    return FeatureGroupSpec.from_dict(data)
