MODEL (
  name flight_features.departures,
  kind VIEW,
  owner 'team:ml-platform',
  description 'One row per scheduled flight: when it was scheduled to leave and, if it left, when it did (UTC).',
  audits (not_null(columns := (origin, dest, carrier, sched_dep_ts)))
);

SELECT
  origin::TEXT AS origin, -- Origin airport (EWR, JFK, LGA)
  dest::TEXT AS dest, -- Destination airport
  carrier::TEXT AS carrier, -- Airline code
  (strptime(time_hour, '%Y-%m-%dT%H:%M:%SZ') + to_minutes(minute))::TIMESTAMP AS sched_dep_ts, -- Scheduled departure (UTC)
  (CASE WHEN dep_delay IS NOT NULL
        THEN strptime(time_hour, '%Y-%m-%dT%H:%M:%SZ') + to_minutes(minute) + to_minutes(dep_delay::BIGINT)
   END)::TIMESTAMP AS actual_dep_ts, -- Actual departure (UTC); null when the flight was cancelled
  dep_delay::DOUBLE AS dep_delay -- Departure delay (minutes); null when cancelled
FROM raw.flights
