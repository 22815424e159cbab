"""Crash safety with real SIGKILLs, and the single-writer lock.

A writer process (tests/hudi_crash_writer.py) commits to a table that already has commits and is killed at every
fault point of the commit protocol (``FS_DAGSTER_KILL_AT``), and at seeded random moments of a large multi-file
write. After each kill the table reads (hudi-rs and ours) exactly as of the last completed commit, or with the
new commit when the kill came after publishing it; the next write rolls the remains back and succeeds; the table
then holds no duplicate, no Parquet file of a rolled-back instant, no leftover ``.inflight``/``.requested``, and
equals the model. Two concurrent writers are serialized by the lock; a writer that cannot get it in time raises
``TableLockedError`` naming the table.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pytest

from fs_dagster.core.errors import TableLockedError, WriteFailedError
from fs_dagster.core.offline import fault_points
from fs_dagster.core.offline.fault_points import ENV_VAR
from fs_dagster.core.offline.hudi_lock import TableWriteLock
from fs_dagster.core.offline.hudi_reader import HudiTableReader
from fs_dagster.core.offline.hudi_writer import HudiWriter
from hudi_crash_writer import CONFIG, PART_SIZE, make_batch, partition_of
from hudi_testing import assert_table_clean, instants_on_disk, listing, rs_changes, rs_commits, rs_read

HELPER = Path(__file__).with_name("hudi_crash_writer.py")
MAX_FILE_ROWS = 100  # small files: a few hundred rows make several file groups per partition


@dataclass
class Model:
    """id -> (partition, version); ``v`` of a row is id * 10 + version."""

    part_size: int = PART_SIZE
    rows: dict[int, tuple[str, int]] = field(default_factory=dict)
    history: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)

    def upsert(self, first: int, count: int, version: int) -> int:
        """Applies a batch of ``version`` (its event time ``ts``); returns the rows it writes. A stored row of a
        newer version stays (the precombine rule), one of the same version is identical (not written)."""
        written = 0
        for i in range(first, first + count):
            stored = self.rows.get(i)
            if stored is None or stored[1] < version:
                self.rows[i] = (partition_of(i, self.part_size), version)
                written += 1
        return written

    def delete(self, first: int, count: int) -> None:
        for i in range(first, first + count):
            self.rows.pop(i, None)

    def committed(self, instant: str) -> None:
        self.history[instant] = dict(self.rows)


def assert_reads(path: Path, expected: dict[int, tuple[str, int]], as_of: str | None = None) -> None:
    """hudi-rs and our reader both return exactly ``expected`` (as of ``as_of``): ids, partitions, versions."""
    ids = sorted(expected)
    want = pa.table({
        "id": pa.array(ids, pa.int64()),
        "part": pa.array([expected[i][0] for i in ids]),
        "v": pa.array([i * 10.0 + expected[i][1] for i in ids], pa.float64()),
    })
    for table in (rs_read(path, as_of=as_of), HudiTableReader(path).read(as_of=as_of)):
        got = table.select(["id", "part", "v"]).sort_by("id")
        assert got.num_rows == want.num_rows
        assert got.equals(want), got.to_pandas().compare(want.to_pandas()).head(10)


def assert_history(path: Path, model: Model) -> None:
    assert rs_commits(path) == list(model.history)
    for instant, rows in model.history.items():
        assert_reads(path, rows, as_of=instant)


def run_writer(path: Path, *args: str, kill_at: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if kill_at:
        env[ENV_VAR] = kill_at
    return subprocess.run(
        [sys.executable, str(HELPER), str(path), "--max-file-rows", str(MAX_FILE_ROWS), *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )


def committed_instant(proc: subprocess.CompletedProcess | str) -> dict:
    out = proc if isinstance(proc, str) else proc.stdout
    (line,) = [line for line in out.splitlines() if line.startswith("committed ")]
    return json.loads(line.split(" ", 1)[1])


def writer(path: Path, max_file_rows: int = MAX_FILE_ROWS) -> HudiWriter:
    return HudiWriter(path, CONFIG, max_file_rows=max_file_rows, small_file_rows=max_file_rows // 2, durable=False)


def pending_files(path: Path, instant: str) -> list[Path]:
    return [p for p in path.rglob(f"*_{instant}.parquet")]


def recover_and_check(
    path: Path, model: Model, crashed: list[str], max_file_rows: int = MAX_FILE_ROWS, history: bool = True
) -> None:
    """The next write rolls back what the killed writer left, commits, and leaves a clean table."""
    version = 100 + len(model.history)
    result = writer(path, max_file_rows).upsert(make_batch(0, 50, version, model.part_size))
    assert list(result.rolled_back) == crashed
    for instant in crashed:
        assert not pending_files(path, instant), f"files of rolled-back {instant} left on disk"
    previous = list(model.history)[-1]
    model.upsert(0, 50, version)
    model.committed(result.instant)
    assert_table_clean(path)
    assert_reads(path, model.rows)
    if history:
        assert_history(path, model)
    for changes in (rs_changes(path, previous, result.instant), HudiTableReader(path).read_changes(previous, result.instant)):
        assert sorted(changes["id"].to_pylist()) == list(range(50))
        assert set(changes["_hoodie_commit_time"].to_pylist()) == {result.instant}


@pytest.fixture
def table(tmp_path: Path) -> tuple[Path, Model]:
    """Two commits: ids 0-449 (partitions p0-p2, several file groups each), then 150-449 updated."""
    path = tmp_path / "table"
    model = Model()
    w = writer(path)
    model.upsert(0, 450, 1)
    model.committed(w.upsert(make_batch(0, 450, 1)).instant)
    model.upsert(150, 300, 2)
    model.committed(w.upsert(make_batch(150, 300, 2)).instant)
    return path, model


# The killed commit: ids 300-749, version 3 = 150 updates (p1, p2) and 300 inserts, 150 of them in a new partition
# p3; about a dozen file groups.
CRASH_BATCH = ("--first", "300", "--count", "450", "--version", "3")

FAULT_POINTS = [
    "after_requested",
    "after_inflight",
    "after_partition_metadata",
    "after_data_file:1",
    "after_data_file:2",
    "after_data_file:3",
    "before_commit",
    "after_commit",
]


@pytest.mark.parametrize("kill_at", FAULT_POINTS)
def test_kill_at_fault_point(table: tuple[Path, Model], kill_at: str) -> None:
    path, model = table
    proc = run_writer(path, *CRASH_BATCH, kill_at=kill_at)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    completed, pending = instants_on_disk(path)
    if kill_at == "after_commit":  # published before the kill: the commit counts
        (instant,) = completed - set(model.history)
        assert not pending
        model.upsert(300, 450, 3)
        model.committed(instant)
        crashed: list[str] = []
    else:
        assert completed == set(model.history)
        crashed = sorted(pending)
        assert len(crashed) == 1
        if kill_at.startswith("after_data_file"):
            assert len(pending_files(path, crashed[0])) >= int(kill_at.split(":")[1])
        if kill_at == "after_partition_metadata":
            assert (path / "part=p3" / ".hoodie_partition_metadata").exists()
    assert_reads(path, model.rows)  # readers see the last completed commit, never the partial one
    assert_history(path, model)
    recover_and_check(path, model, crashed)
    if kill_at != "after_commit":
        assert not (path / "part=p3").exists(), "partition folder created by a rolled-back commit left behind"


def test_kill_during_delete(table: tuple[Path, Model]) -> None:
    path, model = table
    proc = run_writer(path, "--first", "0", "--count", "300", "--delete", kill_at="after_data_file:2")
    assert proc.returncode == -signal.SIGKILL
    completed, pending = instants_on_disk(path)
    assert completed == set(model.history) and len(pending) == 1
    assert_reads(path, model.rows)
    recover_and_check(path, model, sorted(pending))


def test_kill_after_rollback_then_recover(table: tuple[Path, Model]) -> None:
    """A writer killed right after rolling back another's remains: the rollback stands, the table is clean."""
    path, model = table
    assert run_writer(path, *CRASH_BATCH, kill_at="after_data_file:2").returncode == -signal.SIGKILL
    _, (first_crash,) = instants_on_disk(path)
    assert pending_files(path, first_crash)
    assert run_writer(path, *CRASH_BATCH, kill_at="after_rollback").returncode == -signal.SIGKILL
    completed, pending = instants_on_disk(path)
    assert not pending and completed == set(model.history)
    assert not pending_files(path, first_crash)
    assert_reads(path, model.rows)
    recover_and_check(path, model, [])


def test_kill_inside_atomic_file_writes(table: tuple[Path, Model]) -> None:
    """A writer killed inside ``write_atomically`` leaves ``.<name>.tmp-<pid>`` files (of the commit file being
    published, or of a new partition's metadata file); there is no fault point between the temp write and the
    rename, so the remains are laid out by hand next to a real kill. The next writer removes them."""
    path, model = table
    assert run_writer(path, *CRASH_BATCH, kill_at="before_commit").returncode == -signal.SIGKILL
    _, (crashed,) = instants_on_disk(path)
    first_commit = next(iter(model.history))
    (path / ".hoodie" / f".{crashed}.commit.tmp-99999").write_bytes(
        (path / ".hoodie" / f"{first_commit}.commit").read_bytes()[:100]
    )
    (path / "part=p9").mkdir()
    # write_atomically's temp name is ".<name>.tmp-<pid>", so two dots for the partition metadata file
    (path / "part=p9" / "..hoodie_partition_metadata.tmp-99999").write_text("#partition metadata\n")
    (path / "part=p0" / "..hoodie_partition_metadata.tmp-99998").write_text("#partition metadata\n")
    assert_reads(path, model.rows)  # hudi-rs ignores them; so do we
    recover_and_check(path, model, [crashed])
    assert not (path / "part=p9").exists()
    assert not list(path.rglob("*.tmp-*"))


def test_repeated_crashes_then_subprocess_write(table: tuple[Path, Model]) -> None:
    """Several killed writers in a row; a writer process (not this one) then rolls all of them back."""
    path, model = table
    for kill_at in ("after_inflight", "after_data_file:3"):
        assert run_writer(path, *CRASH_BATCH, kill_at=kill_at).returncode == -signal.SIGKILL
    _, pending = instants_on_disk(path)
    assert len(pending) == 1  # the second writer rolled back the first before starting its own instant
    proc = run_writer(path, *CRASH_BATCH)
    assert proc.returncode == 0, proc.stderr
    info = committed_instant(proc)
    assert info["rolled_back"] == sorted(pending)
    model.upsert(300, 450, 3)
    model.committed(info["instant"])
    assert_table_clean(path)
    assert_reads(path, model.rows)
    assert_history(path, model)


def test_kill_at_random_moments_of_a_large_write(tmp_path: Path) -> None:
    """A 60k-row upsert over 5 partitions and ~15 file groups, killed at seeded random delays."""
    path = tmp_path / "big"
    model = Model(part_size=20_000)
    big = ("--max-file-rows", "5000", "--part-size", "20000")
    w = writer(path, 5000)
    model.upsert(0, 60_000, 1)
    model.committed(w.upsert(make_batch(0, 60_000, 1, 20_000)).instant)

    def start(version: int, first: int) -> tuple[subprocess.Popen, float]:
        proc = subprocess.Popen(
            [sys.executable, str(HELPER), str(path), "--first", str(first), "--count", "60000",
             "--version", str(version), *big],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={k: v for k, v in os.environ.items() if k != ENV_VAR},
        )
        assert proc.stdout.readline().strip() == "ready"
        return proc, time.monotonic()

    # calibrate: how long the write itself takes on this machine
    proc, started = start(2, 30_000)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    duration = time.monotonic() - started
    model.upsert(30_000, 60_000, 2)
    model.committed(committed_instant(out)["instant"])

    rng = random.Random(20240601)
    landed = killed = 0
    for round_ in range(16):
        if round_ >= 10 and killed >= 3:
            break
        # 10 rounds over the whole write; should a loaded machine's timing let most kills land after the commit,
        # up to 6 more rounds aim at the first half of the write, so at least 3 kills interrupt it
        window = duration * (1.1 if round_ < 10 else 0.5)
        version, first = 10 + round_, rng.randrange(0, 40_000)
        proc, started = start(version, first)
        time.sleep(max(0.0, started + rng.uniform(0, window) - time.monotonic()))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        completed, pending = instants_on_disk(path)
        new = completed - set(model.history)
        if new:  # the kill came after the commit was published
            (instant,) = new
            model.upsert(first, 60_000, version)
            model.committed(instant)
            landed += 1
        else:
            killed += 1
        assert_reads(path, model.rows)
        crashed = sorted(pending)
        assert len(crashed) <= 1
        recover_and_check(path, model, crashed, 5000, history=False)  # time travel checked once, below
    print(f"random kills: {killed} in progress, {landed} after publishing; write takes {duration:.2f}s")
    assert killed >= 3, f"only {killed} kills hit a write in progress (write takes {duration:.2f}s)"
    assert_history(path, model)


# --- a full disk ------------------------------------------------------------------------------------------------
#
# A write the storage refuses (ENOSPC) raises WriteFailedError naming the table and the file it was writing, and
# removes what it wrote at once: a partial file must not keep the disk full until the next write, and the table
# must be byte for byte as before. Checked on a real full disk (a tmpfs a few pages short, at every page count from
# nothing left to enough), and with ENOSPC injected at every fault point (FS_DAGSTER_FAIL_AT) where no tmpfs can be
# mounted.

PAGE = 4096


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MB tmpfs (root only: skipped elsewhere; the injected-fault test below covers the same paths)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:  # lazily if a file is still open (a failing test): never leave a mount behind
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """Fills the disk up to ``leave`` free bytes (tmpfs counts whole pages)."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * (free_bytes(disk) - leave))
    assert free_bytes(disk) == leave
    return filler


def named_file(error: WriteFailedError, path: Path) -> str:
    """The table-relative file the error says was being written; it must be one a commit writes."""
    match = re.search(r"while writing (\S+);", str(error))
    assert match, str(error)
    name = match.group(1)
    assert re.fullmatch(r"(\.hoodie/(\d{17}\.(commit|inflight|commit\.requested)|hoodie\.properties)"
                        r"|(part=p\d/)?(\.hoodie_partition_metadata|[\w-]+_\d{17}\.parquet))", name), name
    return name


def test_disk_full_at_every_step_leaves_the_table_unchanged(small_disk: Path) -> None:
    """Free space grows a page at a time until the commit fits: each refused write names the file it could not
    write (the inflight, a new partition's metadata, base files, the commit itself), and leaves the table byte for
    byte as it was, no temp or partial file, and the disk as full (not fuller) than before."""
    path = small_disk / "table"
    model = Model()
    w = writer(path)
    model.upsert(0, 450, 1)
    model.committed(w.upsert(make_batch(0, 450, 1)).instant)
    before = listing(path, include_lock=False)
    named: list[str] = []
    for leave in range(0, 200 * PAGE, PAGE):
        filler = fill(small_disk, leave)
        try:
            result = writer(path).upsert(make_batch(300, 450, 3))  # updates p1/p2, inserts into a new p3
        except WriteFailedError as error:
            assert error.errno == errno.ENOSPC and str(path) in str(error)
            named.append(named_file(error, path))
            assert listing(path, include_lock=False) == before, f"table changed by the failed write ({leave} bytes)"
            assert free_bytes(small_disk) == leave, "the failed write's partial files still take space"
            continue
        finally:
            filler.unlink()
        assert result.rolled_back == ()  # nothing was left behind for this writer to roll back
        model.upsert(300, 450, 3)
        model.committed(result.instant)
        break
    else:
        pytest.fail("the write never fit")
    kinds = {re.sub(r"\d{17}|[\w-]+_\d{17}", "*", n.split("/")[-1]) for n in named}
    assert {"*.inflight", ".hoodie_partition_metadata", "*.parquet", "*.commit"} <= kinds, named
    assert_table_clean(path)
    assert_history(path, model)


def test_disk_full_on_the_first_write_leaves_no_table(small_disk: Path) -> None:
    path = small_disk / "new"
    for leave in (0, PAGE, 3 * PAGE):
        filler = fill(small_disk, leave)
        try:
            with pytest.raises(WriteFailedError) as info:
                writer(path).upsert(make_batch(0, 450, 1))
        finally:
            filler.unlink()
        named_file(info.value, path)
        assert "no table was created" in str(info.value)
        # as a refused first batch leaves it: the .hoodie folder with the lock file, nothing a reader would take
        assert sorted(os.listdir(path)) == [".hoodie"]
        assert sorted(os.listdir(path / ".hoodie")) == [".fs_dagster_write.lock"]
    assert writer(path).upsert(make_batch(0, 450, 1)).rows_inserted == 450


@pytest.mark.parametrize("point", [p for p in FAULT_POINTS if p != "after_commit"])
def test_injected_disk_full_at_fault_point(table: tuple[Path, Model], point: str, monkeypatch) -> None:
    path, model = table
    before = listing(path, include_lock=False)
    fault_points.reset()
    monkeypatch.setenv(fault_points.FAIL_ENV_VAR, point if ":" in point else f"{point}:1")
    with pytest.raises(WriteFailedError) as info:
        writer(path).upsert(make_batch(300, 450, 3))
    assert info.value.errno == errno.ENOSPC
    assert str(path) in str(info.value) and "were removed; the table is as of its last commit" in str(info.value)
    assert listing(path, include_lock=False) == before
    assert_reads(path, model.rows)
    result = writer(path).upsert(make_batch(300, 450, 3))  # the fault fired once: this write goes through
    assert result.rolled_back == ()
    model.upsert(300, 450, 3)
    model.committed(result.instant)
    assert_table_clean(path)
    assert_history(path, model)


def test_injected_disk_full_after_publishing_keeps_the_commit(table: tuple[Path, Model], monkeypatch) -> None:
    """An error after the commit file is in place must not roll the published commit back."""
    path, model = table
    fault_points.reset()
    monkeypatch.setenv(fault_points.FAIL_ENV_VAR, "after_commit:1")
    with pytest.raises(OSError):
        writer(path).upsert(make_batch(300, 450, 3))
    (instant,) = instants_on_disk(path)[0] - set(model.history)
    model.upsert(300, 450, 3)
    model.committed(instant)
    assert_table_clean(path)
    assert_history(path, model)


# --- the lock ---------------------------------------------------------------------------------------------------


def test_concurrent_writers_are_serialized(table: tuple[Path, Model]) -> None:
    path, model = table
    args = [
        ("--first", "300", "--count", "450", "--version", "5"),
        ("--first", "500", "--count", "450", "--version", "6"),
    ]
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    lock = TableWriteLock(path, timeout=5)
    lock.acquire()  # both writers queue behind this lock, then race for it when it is released
    try:
        procs = [
            subprocess.Popen([sys.executable, str(HELPER), str(path), "--max-file-rows", str(MAX_FILE_ROWS), *a],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for a in args
        ]
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        assert rs_commits(path) == list(model.history), "a writer committed while the lock was held"
    finally:
        lock.release()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    instants = [committed_instant(out)["instant"] for out, _ in outputs]
    assert len(set(instants)) == 2
    written = {}
    for instant, a in sorted(zip(instants, args)):  # whichever commits second: the newer version of a row wins
        written[instant] = model.upsert(int(a[1]), int(a[3]), int(a[5]))
        model.committed(instant)
    assert_table_clean(path)
    assert_reads(path, model.rows)
    assert_history(path, model)
    info = {c.instant: c for c in HudiTableReader(path).commits()}
    first, second = sorted(instants)
    assert info[first].rows_inserted + info[first].rows_updated == written[first] == 450
    assert info[second].rows_inserted + info[second].rows_updated == written[second]  # 450, or 200 after version 6


def test_lock_timeout_names_the_table(table: tuple[Path, Model]) -> None:
    path, model = table
    before = listing(path, include_lock=False)
    holder = TableWriteLock(path, timeout=5)
    holder.acquire()
    try:
        started = time.monotonic()
        with pytest.raises(TableLockedError) as info:
            HudiWriter(path, CONFIG, lock_timeout=0.3).upsert(make_batch(0, 10, 7))
        assert 0.3 <= time.monotonic() - started < 5
        assert str(path) in str(info.value)
        assert str(os.getpid()) in str(info.value)  # the holder
        proc = run_writer(path, "--first", "0", "--count", "10", "--lock-timeout", "0.5")
        assert proc.returncode != 0 and "TableLockedError" in proc.stderr and str(path) in proc.stderr
    finally:
        holder.release()
    assert listing(path, include_lock=False) == before
    assert_reads(path, model.rows)
    result = HudiWriter(path, CONFIG, lock_timeout=0.3).upsert(make_batch(0, 10, 7))
    assert result.instant is not None and result.rows_updated == 10
