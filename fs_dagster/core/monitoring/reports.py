"""Where monitoring reports live and how they are written; the lazy import of Evidently.

Every report is a pair of files under the store root::

    <root>/<project>/reports/<kind>/<name>/<UTC timestamp>.html   Evidently's self-contained page (~4 MB)
    <root>/<project>/reports/<kind>/<name>/<UTC timestamp>.json   {"summary": key figures, "evidently": snapshot}

``kind`` is what was compared (``drift``, ``quality``, ``feature_monitoring``), ``name`` what it was about (a
deployment, a feature group). The timestamp (``20261206T015800123456Z``) sorts in time order; both files are
written under a temporary name and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fs_dagster.core.errors import InvalidDataError, MissingDependencyError
from fs_dagster.core.extras import require
from fs_dagster.core.specs import check_name

if TYPE_CHECKING:
    from fs_dagster.core.store import FeatureStore

EVIDENTLY_REQUIREMENT = "evidently>=0.7.23,<0.8"  # as the [monitoring] extra in pyproject.toml
EXTRA = "monitoring"


def require_evidently() -> ModuleType:
    """The ``evidently`` module, imported on first use (it takes ~1.5 s and is only needed by the monitors).

    Raises:
        MissingDependencyError: Evidently is not installed, naming the extra and the supported versions.
    """
    try:
        return require(EXTRA, "monitoring reports (drift, model quality)")
    except MissingDependencyError as error:
        raise MissingDependencyError(f"{error} (or pip install \"{EVIDENTLY_REQUIREMENT}\")") from error.__cause__


@dataclass(frozen=True)
class ReportPaths:
    """The files of one saved report (``html`` is None for a report without an Evidently page)."""

    html: Path | None
    json: Path


def project_folder(target: FeatureStore | str | Path) -> Path:
    """``<root>/<project>`` of a store, or ``target`` itself when it is a path."""
    if isinstance(target, (str, Path)):
        return Path(target)
    return target.project_path


def report_folder(target: FeatureStore | str | Path, kind: str, name: str) -> Path:
    """``<root>/<project>/reports/<kind>/<name>`` (names checked: lower case, digits, ``_``)."""
    check_name("report kind", kind)
    check_name("report", name)
    return project_folder(target) / "reports" / kind / name


def timestamp_text(at: datetime) -> str:
    """``20261206T015800123456Z``: UTC, sorts in time order, safe in file names."""
    if at.tzinfo is None:
        raise InvalidDataError(f"report time {at!r} must be timezone-aware")
    return at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None and numpy scalars as Python numbers (strict JSON, as the registry keeps)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(target: FeatureStore | str | Path, kind: str, name: str, at: datetime, summary: dict[str, Any],
                 snapshot: Any = None) -> ReportPaths:
    """Writes ``summary`` (and the Evidently ``snapshot``'s page and JSON, if given) as one report.

    Returns:
        The paths written. A second report with the same timestamp gets a ``-1``, ``-2``... suffix.
    """
    folder = report_folder(target, kind, name)
    folder.mkdir(parents=True, exist_ok=True)
    stem = timestamp_text(at)
    suffix = 0
    while (folder / f"{stem}.json").exists() or (folder / f"{stem}.html").exists():
        suffix += 1
        stem = f"{timestamp_text(at)}-{suffix}"
    document: dict[str, Any] = {"summary": json_safe(summary)}
    if snapshot is not None:
        document["evidently"] = json.loads(snapshot.json())
    json_path = folder / f"{stem}.json"
    html_path = folder / f"{stem}.html" if snapshot is not None else None
    if html_path is not None:
        _atomic(html_path, lambda tmp: snapshot.save_html(str(tmp)))
    _atomic(json_path, lambda tmp: tmp.write_text(json.dumps(document, allow_nan=False, default=str), "utf-8"))
    return ReportPaths(html_path, json_path)


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
