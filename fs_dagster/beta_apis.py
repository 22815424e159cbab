"""Dagster APIs marked beta or preview that fs-dagster uses on purpose, without a warning on every run.

Dagster prints a ``BetaWarning`` / ``PreviewWarning`` each time such an API is called: every definitions load (in
each code server, run worker and step process) and, for ``Output(data_version=...)``, every materialization. The
APIs we rely on are listed here with the reason; each call site silences the warning of exactly that API, for that
call only (``warnings.catch_warnings``), so a user's own use of beta APIs still warns as Dagster intends.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from typing import Iterator

from dagster import BetaWarning, PreviewWarning

# API name as Dagster's warning spells it -> why we use it
ACCEPTED_BETA_APIS: dict[str, str] = {
    "backfill_policy": "time-partitioned feature groups run single-run backfills (one commit for a range)",
    "data_version": "a feature-group asset reports its Hudi commit as data version (Output(data_version=...))",
    "multi_observable_source_asset": "raw sources are observed, partitioned, with content-hash data versions",
    "allow_nonexistent_upstream_partitions": "a month's route statistics (and a drift "
    "partition) read the month before, which the first month lacks",
    "PandasColumn": "feature-group frames are a dagster-pandas type (columns, types, non-null keys)",
    "create_dagster_pandas_dataframe_type": "feature-group frames are a dagster-pandas type",
}


@contextmanager
def accepting_beta(*apis: str) -> Iterator[None]:
    """Silences Dagster's beta/preview warnings about ``apis`` (names from :data:`ACCEPTED_BETA_APIS`) inside the
    block; every other warning, beta ones about other APIs included, still shows.

    Example:
        with accepting_beta("backfill_policy"):
            assets_def = asset(..., backfill_policy=BackfillPolicy.single_run())(fn)
    """
    unknown = [api for api in apis if api not in ACCEPTED_BETA_APIS]
    if unknown:
        raise ValueError(f"accepting_beta: {unknown} are not listed in ACCEPTED_BETA_APIS (say why we use them)")
    with warnings.catch_warnings():
        for api in apis:
            # Dagster's messages name the API in backticks: "Parameter `backfill_policy` of function `asset` ..."
            pattern = rf".*`{re.escape(api)}`"
            warnings.filterwarnings("ignore", message=pattern, category=BetaWarning)
            warnings.filterwarnings("ignore", message=pattern, category=PreviewWarning)
        yield
