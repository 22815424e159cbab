"""Tables damaged by hand (files deleted, emptied, overwritten, copied in), then every public operation tried.

Each case writes a real feature group through the API (three commits over three partitions, registry and
statistics recorded), damages it the way a person or a storage fault would, and runs read, read as of the first
commit, read_changes, count, commit_details, statistics, sync_registry, insert and delete. Every operation either
works correctly (its answer checked against what the table held before the damage, as its timeline still defines
it) or fails with an error naming the damaged file; nothing the API does makes things worse: after refused
operations the table is byte for byte as damaged and the registry unchanged.

Each case runs twice: ``cold`` (the reader's plan cache emptied, as in a new process: the expected outcome of
every operation is pinned), and ``warm`` (straight after the writes, plans of the undamaged table still cached in
the process: an operation served from such a plan must still answer correctly, or fail naming the file).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from fs_dagster import FeatureStore
from fs_dagster.core.errors import DamagedTableError, FeatureStoreError, InvalidDataError
from fs_dagster.core.offline import hudi_reader
from hudi_testing import listing, rs_commits

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
OPERATIONS = ("read", "read_as_of", "read_changes", "count", "commit_details", "statistics", "sync_registry",
              "insert", "delete")
READS = ("read", "read_as_of", "read_changes", "count", "commit_details")


def rows(ids: list[int], version: int, region: str | None = None) -> pd.DataFrame:
    return pd.DataFrame({
        "id": ids,
        "region": [region or ("eu" if i % 2 else "us") for i in ids],
        "ts": [T0 + timedelta(hours=i) for i in ids],
        "v": [i * 10.0 + version for i in ids],
    })


@dataclass
class Table:
    """A feature group with three commits and what it held after each (before any damage)."""

    fs: FeatureStore
    fg: Any
    instants: list[str]
    snapshots: dict[str, list[dict]]  # instant -> rows (id, region, v) sorted by id
    changes: dict[str, list[int]]  # end instant -> ids changed in (first commit, end]

    @property
    def path(self) -> Path:
        return self.fg.path

    def file_of(self, instant: str, region: str) -> Path:
        (found,) = (self.path / f"region={region}").glob(f"*_{instant}.parquet")
        return found


def content(frame: pd.DataFrame) -> list[dict]:
    return frame[["id", "region", "v"]].sort_values("id").to_dict("records")


@pytest.fixture
def table(tmp_path: Path) -> Table:
    """c1: ids 1-6 in eu/us; c2: ids 1, 3 updated and 7 added (eu only); c3: id 2 updated (us), 8-9 in a new
    partition ap. Live files: eu@c2, us@c3, ap@c3; superseded: eu@c1, us@c1."""
    fs = FeatureStore(root=tmp_path / "store", project="damage", durable=False)
    fg = fs.get_or_create_feature_group("weather", primary_key=["id"], event_time="ts", partition_key=["region"])
    instants = [fg.insert(rows([1, 2, 3, 4, 5, 6], 1)).instant, fg.insert(rows([1, 3, 7], 2)).instant,
                fg.insert(pd.concat([rows([2], 3), rows([8, 9], 3, "ap")])).instant]
    snapshots = {i: content(fg.read(as_of=i)) for i in instants}
    changes = {end: sorted(fg.read_changes(instants[0], end)["id"]) for end in instants[1:]}
    assert fg.statistics()["row_count"] == 9
    return Table(fs, fg, instants, snapshots, changes)


# --- the damage cases ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """What is done to the table, the name every error must contain, and the operations that work (cold)."""

    damage: Callable[[Table], str]  # damages the table, returns the text errors must name (a file, relative)
    works: tuple[str, ...] = ()
    lost_latest: bool = False  # the timeline lost its latest commit (reads show the table as of the one before)


def delete_file(pick: Callable[[Table], Path]) -> Callable[[Table], str]:
    def damage(t: Table) -> str:
        target = pick(t)
        target.unlink()
        return os.path.relpath(target, t.path)
    return damage


def rewrite(pick: Callable[[Table], Path], how: Callable[[bytes], bytes]) -> Callable[[Table], str]:
    def damage(t: Table) -> str:
        target = pick(t)
        target.write_bytes(how(target.read_bytes()))
        return os.path.relpath(target, t.path)
    return damage


def props(t: Table) -> Path:
    return t.path / ".hoodie" / "hoodie.properties"


def commit_file(index: int) -> Callable[[Table], Path]:
    return lambda t: t.path / ".hoodie" / f"{t.instants[index]}.commit"


def rename_table(data: bytes) -> bytes:
    return data.replace(b"hoodie.table.name=weather_v1", b"hoodie.table.name=weather_v2")


def delete_latest_commit(t: Table) -> str:
    (t.path / ".hoodie" / f"{t.instants[2]}.commit").unlink()
    return f".hoodie/{t.instants[2]}.commit"


def delete_hoodie_folder(t: Table) -> str:
    shutil.rmtree(t.path / ".hoodie")
    return ".hoodie/hoodie.properties"


def delete_table_folder(t: Table) -> str:
    shutil.rmtree(t.path)
    return str(t.path)


def copy_in_base_file(t: Table) -> str:
    """A live file copied in under another file id: hudi-rs would serve its rows twice."""
    source = t.file_of(t.instants[2], "us")
    file_id, rest = source.name.split("_", 1)
    target = source.with_name(f"{file_id[:-2]}ff-0_{rest}")
    shutil.copyfile(source, target)
    return os.path.relpath(target, t.path)


def delete_partition_metadata(t: Table) -> str:
    (t.path / "region=us" / ".hoodie_partition_metadata").unlink()
    return "region=us/.hoodie_partition_metadata"


EVERYTHING = OPERATIONS
CASES: dict[str, Damage] = {
    # live base files
    "latest base file deleted (an older version of its file group exists)": Damage(
        delete_file(lambda t: t.file_of(t.instants[2], "us")), works=("read_as_of", "commit_details")),
    "latest base file of a new file group deleted": Damage(
        delete_file(lambda t: t.file_of(t.instants[2], "ap")), works=("read_as_of", "commit_details")),
    "superseded base file deleted": Damage(
        delete_file(lambda t: t.file_of(t.instants[0], "eu")),
        works=tuple(op for op in OPERATIONS if op != "read_as_of")),
    "live base file copied in under another file id": Damage(  # incremental reads plan from commit metadata
        copy_in_base_file, works=("read_as_of", "read_changes", "commit_details")),
    "partition metadata deleted (hudi-rs does not need it)": Damage(delete_partition_metadata, works=EVERYTHING),
    # hoodie.properties
    "hoodie.properties deleted": Damage(delete_file(props)),
    "hoodie.properties garbage": Damage(rewrite(props, lambda b: b"\x00\xff garbage \x17" * 20)),
    "hoodie.properties emptied": Damage(rewrite(props, lambda b: b"")),
    "hoodie.properties truncated": Damage(rewrite(props, lambda b: b[: len(b) // 2])),
    "hoodie.properties of another table name (checksum mismatch)": Damage(rewrite(props, rename_table)),
    # commit files
    "latest .commit emptied": Damage(rewrite(commit_file(2), lambda b: b"")),
    "latest .commit garbage": Damage(rewrite(commit_file(2), lambda b: b"{not json at all")),
    "latest .commit truncated": Damage(rewrite(commit_file(2), lambda b: b[: len(b) // 2])),
    "latest .commit a JSON list": Damage(rewrite(commit_file(2), lambda b: b"[1, 2, 3]")),
    "first .commit garbage": Damage(rewrite(commit_file(0), lambda b: b"\x00" * len(b))),
    "latest .commit deleted (the registry still lists it)": Damage(
        delete_latest_commit, works=READS, lost_latest=True),
    # folders
    ".hoodie folder deleted": Damage(delete_hoodie_folder),
    "table folder deleted": Damage(delete_table_folder),
}


# --- running the operations ---------------------------------------------------------------------------------------


def attempt(t: Table, operation: str, expected_latest: str) -> tuple[bool, Any]:
    """Runs one operation; (True, None) when it answered correctly, (False, error) when it raised."""
    fg, first = t.fg, t.instants[0]
    try:
        if operation == "read":
            assert content(fg.read()) == t.snapshots[expected_latest]
        elif operation == "read_as_of":
            assert content(fg.read(as_of=first)) == t.snapshots[first]
        elif operation == "read_changes":
            assert sorted(fg.read_changes(first)["id"]) == t.changes[expected_latest]
        elif operation == "count":
            assert fg.count() == len(t.snapshots[expected_latest])
        elif operation == "commit_details":
            timeline = t.instants[: t.instants.index(expected_latest) + 1]
            assert [c.instant for c in fg.commit_details()] == list(reversed(timeline))
        elif operation == "statistics":
            assert fg.statistics()["row_count"] == len(t.snapshots[expected_latest])
        elif operation == "sync_registry":
            fg.sync_registry()
            recorded = [c.instant for c in t.fs.registry.commits("damage", "weather", 1)]
            assert recorded == t.instants[: t.instants.index(expected_latest) + 1]
        elif operation == "insert":
            result = fg.insert(rows([5, 10], 9))
            assert (result.rows_inserted, result.rows_updated) == (1, 1)
        elif operation == "delete":
            assert fg.delete(pd.DataFrame({"id": [4], "region": ["us"]})).rows_deleted == 1
        return True, None
    except FeatureStoreError as error:
        return False, error


def run_case(t: Table, case: Damage, cold: bool) -> dict[str, bool]:
    named = case.damage(t)
    if cold:
        hudi_reader._PLANS.clear()  # as a new process would start
    expected_latest = t.instants[1] if case.lost_latest else t.instants[2]
    damaged = listing(t.path, include_lock=False) if t.path.exists() else None
    recorded = t.fs.registry.commits("damage", "weather", 1)
    outcomes: dict[str, bool] = {}
    wrote = False
    for operation in OPERATIONS:
        worked, error = attempt(t, operation, expected_latest)
        outcomes[operation] = worked
        if worked:
            wrote |= operation in ("insert", "delete")
            continue
        assert named in str(error), f"{operation}: {named!r} not named in: {error}"
        assert isinstance(error, DamagedTableError), f"{operation}: {type(error).__name__}: {error}"
        if not wrote:  # refused: nothing changed, on disk or in the registry
            assert (listing(t.path, include_lock=False) if t.path.exists() else None) == damaged, operation
            assert t.fs.registry.commits("damage", "weather", 1) == recorded, operation
    if wrote:  # the writes that went through left a correct table: the snapshot plus their changes
        latest = {r["id"]: r for r in t.snapshots[expected_latest]}
        latest[5] = {"id": 5, "region": "eu", "v": 59.0}
        latest[10] = {"id": 10, "region": "us", "v": 109.0}
        latest.pop(4)
        assert content(t.fg.read()) == [latest[i] for i in sorted(latest)]
        assert rs_commits(t.path)[: len(t.instants)] == t.instants
    return outcomes


@pytest.mark.parametrize("name", list(CASES))
def test_damage_cold(table: Table, name: str) -> None:
    """The outcome of every operation is pinned: the expected ones work, the others fail naming the file."""
    case = CASES[name]
    outcomes = run_case(table, case, cold=True)
    assert {op for op, worked in outcomes.items() if worked} == set(case.works)


@pytest.mark.parametrize("name", list(CASES))
def test_damage_warm(table: Table, name: str) -> None:
    """Plans of the undamaged table still cached in this process: answers from them are still correct (checked
    in run_case), writes never go through on a damaged snapshot, and every failure names the file."""
    case = CASES[name]
    outcomes = run_case(table, case, cold=False)
    if case.works != EVERYTHING and not set(case.works) >= {"insert", "delete"}:
        assert not outcomes["insert"] and not outcomes["delete"]


# --- recovering from a lost commit file -----------------------------------------------------------------------------


def test_lost_commit_is_refused_then_abandoned(table: Table) -> None:
    """A deleted latest .commit leaves its .inflight and data files: rolling them back would delete the data of a
    commit the registry lists, so writes are refused naming the instant. Giving the commit up explicitly
    (abandon_commit) reconciles registry and timeline; the next write rolls the remains back."""
    t, lost = table, table.instants[2]
    delete_latest_commit(t)
    data_files = sorted(t.path.rglob(f"*_{lost}.parquet"))
    assert data_files
    with pytest.raises(DamagedTableError, match=f"{lost}.*abandon_commit"):
        t.fg.insert(rows([20], 5))
    assert all(f.exists() for f in data_files)  # nothing rolled back
    with pytest.raises(InvalidDataError, match="is on the table's timeline"):
        t.fg.abandon_commit(t.instants[1])
    with pytest.raises(InvalidDataError, match="no commit 20000101000000000"):
        t.fg.abandon_commit("20000101000000000")
    t.fg.abandon_commit(lost)
    assert [c.instant for c in t.fs.registry.commits("damage", "weather", 1)] == t.instants[:2]
    assert t.fs.registry.statistics("damage", "weather", 1, lost) is None
    result = t.fg.insert(rows([20], 5))
    assert result.rolled_back == (lost,)
    assert not any(f.exists() for f in data_files)
    assert t.fg.count() == len(t.snapshots[t.instants[1]]) + 1
    assert t.fg.statistics()["row_count"] == t.fg.count()


def test_registry_without_table_folder_is_refused_then_abandoned(table: Table) -> None:
    t = table
    delete_table_folder(t)
    with pytest.raises(DamagedTableError, match="registry lists 3 commit"):
        t.fg.count()
    with pytest.raises(DamagedTableError, match=f"latest {t.instants[2]}.*no table here"):
        t.fg.insert(rows([1], 1))
    assert not t.path.exists()  # the refused write did not even create the folder
    t.fg.abandon_commit(*t.instants)
    assert t.fg.count() == 0 and t.fg.commit_details() == []
    assert t.fg.insert(rows([1], 1)).rows_inserted == 1


def test_restored_file_makes_the_table_whole_again(table: Table) -> None:
    """Damage is refused, not repaired around: putting the original file back restores every operation."""
    t = table
    live = t.file_of(t.instants[2], "us")
    saved = live.read_bytes()
    live.unlink()
    with pytest.raises(DamagedTableError):
        t.fg.read()
    live.write_bytes(saved)
    assert content(t.fg.read()) == t.snapshots[t.instants[2]]
    assert t.fg.insert(rows([10], 4)).rows_inserted == 1
