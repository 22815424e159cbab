-- A 24-hour window lies inside the 7-day window that ends at the same hour: it cannot hold more departures.
AUDIT (name windows_nested);
SELECT * FROM @this_model WHERE departed_24h > departed_7d
