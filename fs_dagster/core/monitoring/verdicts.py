"""Verdicts shared by every monitor (drift, model quality, feature monitoring): ``OK``, ``WARN`` or ``ERROR``.

``WARN`` and ``ERROR`` are the two severities of a Dagster asset check; ``OK`` is a passing check.
"""

from __future__ import annotations

from typing import Iterable, Literal

from fs_dagster.core.errors import InvalidDataError

Verdict = Literal["OK", "WARN", "ERROR"]
Severity = Literal["WARN", "ERROR"]
VERDICTS: tuple[Verdict, ...] = ("OK", "WARN", "ERROR")  # in rising order
SEVERITIES: tuple[Severity, ...] = ("WARN", "ERROR")


def worst(verdicts: Iterable[Verdict | None]) -> Verdict:
    """The most severe of ``verdicts`` (None counts as OK); OK for none."""
    return max((v or "OK" for v in verdicts), key=VERDICTS.index, default="OK")


def check_severity(what: str, severity: object, *, optional: bool = False) -> None:
    """Refuses a severity other than ``"WARN"``/``"ERROR"`` (or None when ``optional``), naming ``what``."""
    if severity is None and optional:
        return
    if severity not in SEVERITIES:
        allowed = "'WARN', 'ERROR'" + (" or None" if optional else "")
        raise InvalidDataError(f"{what}: severity must be {allowed}, got {severity!r}")
