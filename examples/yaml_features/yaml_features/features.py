"""Feature code the YAML refers to (``function: yaml_features.features:customers``)."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd


def customers() -> pd.DataFrame:
    """Customers with their lifetime spend, valid from the start of 2024."""
    return pd.DataFrame({
        "customer": ["c0", "c1", "c2"],
        "since": pd.Series([datetime(2023, 12, 1, tzinfo=timezone.utc)] * 3).astype("datetime64[ns, UTC]"),
        "segment": ["new", "regular", "vip"],
        "spend": [120.0, 860.5, 4210.0],
    })
