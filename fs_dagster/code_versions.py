"""Default code versions of the assets fs-dagster builds: a name for *what decides the asset's content*.

Dagster marks an asset stale when its code version changes. For a builder's asset, what decides the content is the
builder's configuration (thresholds, windows, sample size, deployment settings...), so the default code version is
``<kind>-<first 8 hex digits of the SHA-256 of that configuration>``: changing a threshold makes the asset stale,
re-importing the same definitions does not. Values are written as JSON with sorted keys; anything JSON cannot write
(dataclasses, partitions) by its ``repr``, which is stable for the frozen dataclasses used here (an object whose
repr names its memory address counts by its type only).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def recipe_code_version(kind: str, **recipe: Any) -> str:
    """``<kind>-<8 hex>`` from the configuration ``recipe`` (see module doc).

    Example:
        recipe_code_version("drift", thresholds=DriftThresholds(), sample=50_000)   # 'drift-1c0e52a9'
    """
    text = json.dumps(recipe, sort_keys=True, default=_stable_text)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _stable_text(value: Any) -> str:
    text = repr(value)
    # a default object repr names a memory address, different in every process: keep the type only
    return type(value).__qualname__ if " at 0x" in text else text
