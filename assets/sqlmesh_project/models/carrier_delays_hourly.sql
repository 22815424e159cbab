MODEL (
  name flight_features.carrier_delays_hourly,
  kind INCREMENTAL_BY_TIME_RANGE (time_column hour),
  grain (carrier, hour),
  tags (feature_group, online, delay, carrier),
  owner 'team:ml-platform',
  description 'Departure delays of each airline from the NYC airports in the 24 hours and 7 days before each hour in which it has a scheduled departure. Only flights that had actually departed before the hour count, so the values were known at the hour: no look into the future.',
  audits (
    not_null(columns := (carrier, hour, departed_24h, departed_7d)),
    unique_combination_of_columns(columns := (carrier, hour)),
    accepted_range(column := pct_dep_delayed_7d, min_v := 0, max_v := 1),
    windows_nested
  )
);

WITH hours AS ( -- the hours to describe: those with a scheduled departure of the airline
  SELECT DISTINCT carrier, date_trunc('hour', sched_dep_ts) AS hour
  FROM flight_features.departures
  WHERE sched_dep_ts >= @start_dt AND sched_dep_ts < @end_dt
), departed AS ( -- what is known by then: departures that happened, from 7 days before the range on
  SELECT carrier, actual_dep_ts AS ts, dep_delay
  FROM flight_features.departures
  WHERE actual_dep_ts >= @start_dt - INTERVAL 7 DAY AND actual_dep_ts < @end_dt
), events AS ( -- each hour is a marker among the departures (n = 0: it counts nothing itself)
  SELECT carrier, hour AS ts, hour, NULL::DOUBLE AS dep_delay, 0 AS n FROM hours
  UNION ALL
  SELECT carrier, ts, NULL AS hour, dep_delay, 1 AS n FROM departed
)
SELECT
  carrier, -- Airline code
  hour::TIMESTAMP AS hour, -- The hour (UTC) the values were known at: departures strictly before it count
  (sum(n) OVER day_before)::BIGINT AS departed_24h, -- Departures of the airline in the 24 hours before the hour
  avg(dep_delay) OVER day_before AS mean_dep_delay_24h, -- Mean departure delay (min) of those departures
  avg((dep_delay > 15)::DOUBLE) OVER day_before AS pct_dep_delayed_24h, -- Share of them 15+ minutes late
  (sum(n) OVER week_before)::BIGINT AS departed_7d, -- Departures of the airline in the 7 days before the hour
  avg(dep_delay) OVER week_before AS mean_dep_delay_7d, -- Mean departure delay (min) of those departures
  avg((dep_delay > 15)::DOUBLE) OVER week_before AS pct_dep_delayed_7d -- Share of them 15+ minutes late
FROM events
-- RANGE frames end at the marker; EXCLUDE TIES drops departures at exactly the hour: the window is [hour - w, hour)
WINDOW
  day_before AS (PARTITION BY carrier ORDER BY ts RANGE BETWEEN INTERVAL 1 DAY PRECEDING AND CURRENT ROW EXCLUDE TIES),
  week_before AS (PARTITION BY carrier ORDER BY ts RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW EXCLUDE TIES)
QUALIFY hour IS NOT NULL
