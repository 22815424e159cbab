"""Definitions of feature-store objects (plain frozen dataclasses, no I/O): features and feature groups."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.offline.hudi_schema import check_column_name

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Names become folder names (``<name>_v<version>``, ``<project>/``) and the Hudi table name; file systems allow 255
# bytes per name. 128 leaves room for the version suffix and for tools that add their own suffixes.
MAX_NAME_LENGTH = 128
# Versions are stored in an INTEGER column (32-bit on PostgreSQL).
MAX_VERSION = 2**31 - 1


def check_name(kind: str, name: str) -> str:
    """Project, feature-group, feature-view and split names: lower case letters, digits and ``_``, starting with a
    letter, at most :data:`MAX_NAME_LENGTH` characters."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidDataError(f"{kind} name {name!r}: use lower-case letters, digits and '_', starting with a letter")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidDataError(
            f"{kind} name {name[:40]}... is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed "
            "(it names folders, which file systems limit to 255 bytes)"
        )
    return name


def check_version(kind: str, name: str, version: object) -> int:
    """A version number: an ``int`` from 1 to :data:`MAX_VERSION` (``True`` is refused, although Python counts it
    as the integer 1)."""
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidDataError(
            f"{kind} {name!r}: version must be a positive integer (at most {MAX_VERSION}), got {version!r}"
        )
    return version


@dataclass(frozen=True)
class Feature:
    """One column of a feature group.

    Args:
        name: column name.
        type: Arrow type as text (``int64``, ``double``, ``string``, ``bool``, ``timestamp[us, tz=UTC]``,
            ``date32[day]``); empty until the first write fixes it.
        description: shown in search results and the Dagster UI.
    """

    name: str
    type: str = ""
    description: str = ""
    primary: bool = False
    partition: bool = False
    event_time: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "primary": self.primary,
            "partition": self.partition,
            "event_time": self.event_time,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Feature:
        return cls(**{k: data[k] for k in ("name", "type", "description", "primary", "partition", "event_time") if k in data})


def as_features(features: Any) -> tuple[Feature, ...]:
    """Feature objects from per-feature descriptions (``{"temp": "Temperature in F"}``) or Feature objects."""
    if isinstance(features, dict):
        return tuple(Feature(name=n, description=d) for n, d in features.items())
    return tuple(features)


@dataclass(frozen=True)
class FeatureGroupSpec:
    """A versioned table of features about one entity.

    Args:
        name: feature group name (``weather_hourly``).
        version: a new version is a new table; use one to change a feature's type.
        primary_key: entity key column(s); unique per partition within the table.
        event_time: when the row's values became true; the newest wins, among duplicates of one key in a batch
            and against the stored row (equal times: the later write), offline and online alike; point-in-time
            joins use it. None for static features (then the latest write wins).
        partition_key: column(s) whose values partition the offline table (folders).
        online_enabled: keep the latest row per entity in the online store (see :attr:`online_key`).
        online_ttl_seconds: online values expire this long after their last write (None: never).
        description, tags, owner: shown in search and the Dagster UI.
        features: per-feature descriptions (types are filled in by the first write).
        hive_style_partitioning: ``col=value`` partition folders (default) or bare values.

    Example:
        FeatureGroupSpec("weather_hourly", primary_key=("origin", "time_hour"), event_time="time_hour",
                         partition_key=("origin",), description="Hourly weather at the NYC airports")
    """

    name: str
    version: int = 1
    primary_key: tuple[str, ...] = ()
    event_time: str | None = None
    partition_key: tuple[str, ...] = ()
    online_enabled: bool = False
    online_ttl_seconds: int | None = None
    description: str = ""
    features: tuple[Feature, ...] = ()
    tags: tuple[str, ...] = ()
    owner: str | None = None
    hive_style_partitioning: bool = True
    statistics_enabled: bool = True

    def __post_init__(self) -> None:
        check_name("feature group", self.name)
        if isinstance(self.primary_key, str):
            object.__setattr__(self, "primary_key", (self.primary_key,))
        if isinstance(self.partition_key, str):
            object.__setattr__(self, "partition_key", (self.partition_key,))
        object.__setattr__(self, "primary_key", tuple(self.primary_key))
        object.__setattr__(self, "partition_key", tuple(self.partition_key))
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "features", tuple(self.features))
        if not self.primary_key:
            raise InvalidDataError(f"feature group {self.name!r} needs a primary key")
        check_version("feature group", self.name, self.version)
        # the key columns are table columns: refused here, before anything is registered or written
        for role, names in (("primary key", self.primary_key), ("partition key", self.partition_key),
                            ("event time", (self.event_time,) if self.event_time is not None else ())):
            for column in names:
                check_column_name(column, f"feature group {self.name!r}: {role} column")
        for feature in self.features:
            check_column_name(feature.name, f"feature group {self.name!r}: feature")

    @property
    def table_name(self) -> str:
        """The offline table's (and folder's) name: ``<name>_v<version>``."""
        return f"{self.name}_v{self.version}"

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def online_key(self) -> tuple[str, ...]:
        """The entity key of the online store: the primary key without the event time when the event time is part
        of it (a time series such as weather keyed by ``(origin, time_hour)``: the offline table keeps every hour
        for point-in-time joins, the online store the latest row per ``origin``, as Feast serves entities), else
        the primary key. A primary key of the event time alone keeps it (there would be no entity left)."""
        if self.event_time in self.primary_key and len(self.primary_key) > 1:
            return tuple(c for c in self.primary_key if c != self.event_time)
        return self.primary_key

    @property
    def is_time_series(self) -> bool:
        """Whether the online store keeps one row per entity of several offline rows (see :attr:`online_key`)."""
        return self.online_key != self.primary_key

    def feature(self, name: str) -> Feature | None:
        return next((f for f in self.features if f.name == name), None)

    def with_schema(self, columns: list[tuple[str, str]]) -> FeatureGroupSpec:
        """The spec with one Feature per column (types from the table), keeping known descriptions."""
        features = []
        for name, type_text in columns:
            known = self.feature(name)
            features.append(
                Feature(
                    name=name,
                    type=type_text,
                    description=known.description if known else "",
                    primary=name in self.primary_key,
                    partition=name in self.partition_key,
                    event_time=name == self.event_time,
                )
            )
        return replace(self, features=tuple(features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "primary_key": list(self.primary_key),
            "event_time": self.event_time,
            "partition_key": list(self.partition_key),
            "online_enabled": self.online_enabled,
            "online_ttl_seconds": self.online_ttl_seconds,
            "description": self.description,
            "features": [f.to_dict() for f in self.features],
            "tags": list(self.tags),
            "owner": self.owner,
            "hive_style_partitioning": self.hive_style_partitioning,
            "statistics_enabled": self.statistics_enabled,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureGroupSpec:
        data = dict(data)
        data["features"] = tuple(Feature.from_dict(f) for f in data.get("features", ()))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

