"""Pandera schemas the YAML refers to (``pandera_schema: yaml_features.schemas:Customers``)."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class Customers(pa.DataFrameModel):
    customer: Series[str] = pa.Field(unique=True)
    since: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    segment: Series[str] = pa.Field(isin=["new", "regular", "vip"])
    spend: Series[float] = pa.Field(ge=0, description="Lifetime spend (EUR)")

    class Config:
        strict = True
