"""Checks a table's files against its timeline, so that damage done outside the API (a file deleted by hand, lost
by storage, emptied or overwritten) is reported naming the file instead of being read or written over silently.

hudi-rs plans snapshots from a file listing: when the newest base file of a file group is gone it quietly serves
an older version of that file group, and a writer planning from that listing would commit over it, dropping the
commit that wrote the lost file although the timeline still lists it. The completed commits' metadata
(``partitionToWriteStats``) names the file each commit wrote per file group, so the live file of every file group
is known without any listing; a planned snapshot must consist of exactly those files.

What counts as damage here (each error names the file, and neither readers nor writers change anything):

- a timeline (instant files under ``.hoodie/``) without ``.hoodie/hoodie.properties``, or a properties file
  without a table name and version, or whose ``hoodie.table.checksum`` is missing (version 6 and later always
  write it, last) or does not match its table name;
- a completed ``<instant>.commit`` that is empty or not a JSON object of Hudi commit metadata, or whose schema
  holds a column name Avro (hence hudi-rs and Spark) refuses;
- a base file named by the timeline as live that is missing, or a planned file no commit wrote;
- a commit the registry recorded as completed whose ``.commit`` file is gone (see :func:`lost_commits`).

Table version 8 keeps commit metadata as Avro binary, read by hudi-rs only; for those tables (read-only here) a
commit file is just checked to be a non-empty Avro container.
"""

from __future__ import annotations

import json
import os
import re
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from fs_dagster.core.errors import DamagedTableError
from fs_dagster.core.offline.hudi_properties import HOODIE_DIR, PROPERTIES_FILE, parse_properties
from fs_dagster.core.offline.hudi_schema import AVRO_NAME

_COMPLETED_V6 = re.compile(r"^(\d{17})\.(commit|replacecommit)$")
_COMPLETED_V8 = re.compile(r"^(\d{17})_\d{17}\.(commit|replacecommit)$")
_ANY_INSTANT = re.compile(r"^\d{17}[._]")
_AVRO_MAGIC = b"Obj\x01"
_REQUIRED_PROPERTIES = ("hoodie.table.name", "hoodie.table.version")
RESTORE_ADVICE = "restore it from a backup (reads and writes of the table refuse until then)"


@dataclass(frozen=True)
class CommitFiles:
    """What one completed commit says about base files: the file it wrote per file group, the groups it replaced."""

    instant: str
    metadata_file: str  # relative to the table, e.g. ".hoodie/20240101120000123.commit"
    writes: tuple[tuple[str, str, str], ...]  # (partition path, file id, base file path relative to the table)
    replaced: tuple[tuple[str, str], ...] = ()  # (partition path, file id) of replaced file groups


def damaged(base_path: Path, message: str) -> DamagedTableError:
    return DamagedTableError(f"table {base_path}: {message}")


# --- the table folder and its properties ----------------------------------------------------------------------


def has_table(base_path: Path) -> bool:
    """Whether ``base_path`` holds a table (its ``hoodie.properties``); False when nothing was written yet.

    Raises:
        DamagedTableError: instant files exist but the properties file does not: the table was damaged, it is not
            empty, and a writer must not create a new table over its timeline.
    """
    hoodie = base_path / HOODIE_DIR
    if (hoodie / PROPERTIES_FILE).exists():
        return True
    try:
        instants = sorted(n for n in os.listdir(hoodie) if _ANY_INSTANT.match(n))
    except FileNotFoundError:
        return False
    if (hoodie / "timeline").is_dir():
        instants += sorted(n for n in os.listdir(hoodie / "timeline") if _ANY_INSTANT.match(n))
    if not instants:
        return False
    backup = hoodie / f"{PROPERTIES_FILE}.backup"
    hint = f" ({backup.name} exists: Hudi keeps it as a copy)" if backup.exists() else ""
    raise damaged(
        base_path,
        f"{HOODIE_DIR}/{PROPERTIES_FILE} is missing but the timeline has {len(instants)} instant file(s) "
        f"(e.g. {instants[-1]}): the table is damaged, not empty; restore the properties file{hint}",
    )


def checked_properties(base_path: Path) -> dict[str, str]:
    """The parsed ``hoodie.properties``, refused when it cannot be the properties of a table.

    Raises:
        DamagedTableError: unreadable, not text, without a table name or version, or a checksum that does not
            match the table name (how Hudi itself detects a corrupted properties file).
    """
    path = base_path / HOODIE_DIR / PROPERTIES_FILE
    where = f"{HOODIE_DIR}/{PROPERTIES_FILE}"
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        has_table(base_path)  # names a missing file of a table with a timeline
        raise damaged(base_path, f"{where} is missing") from None
    except UnicodeDecodeError as error:
        raise damaged(
            base_path, f"{where} is not a properties file (not UTF-8 text: {error}); {RESTORE_ADVICE}"
        ) from None
    props = parse_properties(text)
    missing = [key for key in _REQUIRED_PROPERTIES if not props.get(key)]
    if missing:
        raise damaged(base_path, f"{where} has no {' and no '.join(missing)}: it is damaged; {RESTORE_ADVICE}")
    if not props["hoodie.table.version"].isdigit():
        raise damaged(
            base_path,
            f"{where}: hoodie.table.version {props['hoodie.table.version']!r} is not a number; {RESTORE_ADVICE}",
        )
    checksum = props.get("hoodie.table.checksum")
    if checksum is None and int(props["hoodie.table.version"]) >= 6:  # written last: a truncated file lacks it
        raise damaged(base_path, f"{where} has no hoodie.table.checksum (truncated?); {RESTORE_ADVICE}")
    if checksum is not None:
        qualified = f"{props.get('hoodie.database.name', '')}.{props['hoodie.table.name']}"
        if checksum != str(zlib.crc32(qualified.encode("utf-8"))):
            raise damaged(
                base_path,
                f"{where}: hoodie.table.checksum {checksum} does not match the table name "
                f"{props['hoodie.table.name']!r}: the file is damaged; {RESTORE_ADVICE}",
            )
    return props


# --- commit metadata --------------------------------------------------------------------------------------------


_CACHE: OrderedDict[str, tuple[tuple[int, int, int], CommitFiles]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8192  # commit files; a completed commit file never changes, so its stat identifies its content


def completed_commits(base_path: Path, instants: Iterable[str] | None = None) -> list[CommitFiles]:
    """Every completed commit of a v6 table, oldest first, each file checked (``instants``: only those).

    Parsed metadata is cached per file (keyed by inode, size and mtime), so a new plan of a long timeline only
    parses the commits it has not seen. v8 tables: each commit file is checked to be a non-empty Avro container and
    nothing is returned (their metadata is Avro, read by hudi-rs).

    Raises:
        DamagedTableError: naming the first commit file that is empty, garbage or truncated.
    """
    hoodie = base_path / HOODIE_DIR
    if (hoodie / "timeline").is_dir():
        _check_v8_commits(base_path)
        return []
    names = {m.group(1): m.group(0) for m in map(_COMPLETED_V6.match, os.listdir(hoodie)) if m}
    wanted = sorted(names) if instants is None else sorted(i for i in instants if i in names)
    folder = os.path.abspath(hoodie)
    return [_commit_files(base_path, folder, instant, names[instant]) for instant in wanted]


def _check_v8_commits(base_path: Path) -> None:
    folder = base_path / HOODIE_DIR / "timeline"
    for name in sorted(os.listdir(folder)):
        if _COMPLETED_V8.match(name):
            with open(folder / name, "rb") as handle:
                head = handle.read(len(_AVRO_MAGIC))
            if head != _AVRO_MAGIC:
                state = "empty" if not head else "not an Avro file"
                raise damaged(base_path, f"commit file {HOODIE_DIR}/timeline/{name} is {state}; {RESTORE_ADVICE}")


def _commit_files(base_path: Path, folder: str, instant: str, name: str) -> CommitFiles:
    key = os.path.join(folder, name)
    stat = os.stat(key)
    identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == identity:
            _CACHE.move_to_end(key)
            return cached[1]
    with open(key, "rb") as handle:
        raw = handle.read()
    files = _parse_commit(base_path, instant, f"{HOODIE_DIR}/{name}", raw)
    with _CACHE_LOCK:
        _CACHE[key] = (identity, files)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return files


def _parse_commit(base_path: Path, instant: str, where: str, raw: bytes) -> CommitFiles:
    def bad(what: str) -> DamagedTableError:
        return damaged(base_path, f"commit file {where} {what}; {RESTORE_ADVICE}")

    if not raw.strip():
        raise bad("is empty")
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise bad(f"is not valid JSON commit metadata ({error}; truncated or overwritten?)") from None
    if not isinstance(meta, dict):
        raise bad(f"holds a JSON {type(meta).__name__}, not commit metadata")
    stats = meta.get("partitionToWriteStats") or {}
    replaced = meta.get("partitionToReplaceFileIds") or {}
    if not isinstance(stats, dict) or not isinstance(replaced, dict):
        raise bad("has malformed partitionToWriteStats")
    writes = []
    for partition, entries in stats.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise bad(f"has malformed write stats for partition {partition!r}")
        for entry in entries:
            if entry.get("path"):  # a stat without a file (nothing written to that group) names no live file
                writes.append((partition, str(entry.get("fileId") or ""), str(entry["path"]).lstrip("/")))
    _check_schema_names(base_path, where, meta)
    gone = tuple((partition, str(f)) for partition, ids in replaced.items() for f in (ids or ()))
    return CommitFiles(instant, where, tuple(writes), gone)


def _check_schema_names(base_path: Path, where: str, meta: dict[str, Any]) -> None:
    """hudi-rs and Spark parse the commit's Avro schema on every read: one invalid field name (written by an
    fs-dagster before names were checked) makes the whole table unreadable, so it is reported here by name."""
    extra = meta.get("extraMetadata")
    schema = extra.get("schema") if isinstance(extra, dict) else None
    if not schema:
        return
    try:
        fields = json.loads(schema).get("fields") or []
        names = [f.get("name") for f in fields]
    except (ValueError, AttributeError, TypeError):
        raise damaged(base_path, f"commit file {where} holds a schema that is not valid Avro JSON; {RESTORE_ADVICE}")
    bad = [n for n in names if not isinstance(n, str) or not AVRO_NAME.fullmatch(n)]
    if bad:
        raise damaged(
            base_path,
            f"commit file {where} has column(s) {bad} whose names Avro refuses, so hudi-rs and Spark cannot read the "
            "table; it was written before such names were refused. Read its base files with DuckDB and write them "
            "to a new feature group version with valid names",
        )


# --- base files -------------------------------------------------------------------------------------------------


def live_files(
    commits: list[CommitFiles], as_of: str | None = None, after: str | None = None
) -> dict[tuple[str, str], tuple[str, str]]:
    """(partition, file id) -> (base file path, commit instant): the file group's file as of ``as_of`` per the
    timeline (the file written by the latest commit at or before it). ``after``: only file groups some commit in
    ``(after, as_of]`` wrote (an incremental read's file groups)."""
    live: dict[tuple[str, str], tuple[str, str]] = {}
    touched: set[tuple[str, str]] = set()
    for commit in commits:
        if as_of is not None and commit.instant > as_of:
            break
        for group in commit.replaced:
            live.pop(group, None)
        for partition, file_id, path in commit.writes:
            live[(partition, file_id)] = (path, commit.instant)
            if after is None or commit.instant > after:
                touched.add((partition, file_id))
    return live if after is None else {g: live[g] for g in touched if g in live}


def check_planned(
    base_path: Path,
    commits: list[CommitFiles],
    planned: Iterable[tuple[str, str, str]],
    as_of: str | None = None,
    after: str | None = None,
) -> None:
    """Refuses a plan (hudi-rs file slices: partition, file id, relative path) that differs from the live files
    the timeline names: a missing live file (hudi-rs fell back to an older one, or dropped the file group), or a
    planned file no commit wrote. Tables without parsed commits (v8) are not checked.

    Raises:
        DamagedTableError: naming the missing or unexpected file and the commit concerned.
    """
    if not commits:
        return
    expected = live_files(commits, as_of, after)
    by_group = {(p, f): path.lstrip("/") for p, f, path in planned}
    for group, (path, instant) in sorted(expected.items(), key=lambda item: item[1]):
        if by_group.get(group) != path:
            raise missing_file(base_path, path, instant)
    first = commits[0].instant
    named = {path for commit in commits for _p, _f, path in commit.writes}
    for group, path in by_group.items():
        instant = _instant_of(path)
        if group not in expected and path not in named and instant is not None and instant >= first:
            raise damaged(
                base_path,
                f"base file {path} is not named by the metadata of commit {instant}: the table's files do not "
                "match its timeline (a file copied in by hand?); move it away or restore the table from a backup",
            )


def missing_file(base_path: Path, path: str, instant: str | None = None) -> DamagedTableError:
    """The error for a live base file that is gone (deleted by hand, lost by storage)."""
    state = "is missing" if not (base_path / path).exists() else "was not found by the file listing"
    by = f" (written by commit {instant}, which the timeline lists)" if instant else ""
    return damaged(
        base_path,
        f"base file {path}{by} {state}; reading or writing around it would silently drop that commit's rows: "
        f"{RESTORE_ADVICE}",
    )


def check_exist(base_path: Path, files: Iterable[str]) -> None:
    """Every planned base file (absolute paths) still exists: a plan cached earlier may list a file deleted since.

    Raises:
        DamagedTableError: naming the first missing file.
    """
    for file in files:
        if not os.path.exists(file):
            raise missing_file(base_path, os.path.relpath(file, base_path), _instant_of(file))


def _instant_of(path: str) -> str | None:
    match = re.search(r"_(\d{17})\.parquet$", path)
    return match.group(1) if match else None


# --- the registry against the timeline ------------------------------------------------------------------------


def lost_commits(recorded: Iterable[str], completed: Iterable[str], pending: Iterable[str] = ()) -> list[str]:
    """Instants the registry recorded as completed that the timeline does not have as completed: their
    ``.commit`` file is gone. Instants older than the oldest completed commit of a non-empty timeline are left out:
    Spark archives old commits out of the active timeline, which loses nothing."""
    done = set(completed)
    oldest = min(done) if done else None
    waiting = set(pending)
    return sorted(
        i for i in set(recorded) - done if i in waiting or oldest is None or i > oldest
    )


def lost_commit_error(base_path: Path, lost: list[str], pending: Iterable[str], refused: str) -> DamagedTableError:
    """The error for commits the registry lists as completed whose ``.commit`` file is gone (see
    :func:`lost_commits`); ``refused`` says what was refused ("The write")."""
    waiting = set(pending)
    first = lost[0]
    state = (
        f"its {HOODIE_DIR}/{first}.inflight and data files remain, and the next write would roll it back (delete them)"
        if first in waiting
        else "no file of it is left on the timeline"
    )
    others = ""
    if len(lost) > 1:
        others = f" (and {len(lost) - 1} more: {', '.join(lost[1:4])}{'...' if len(lost) > 4 else ''})"
    return damaged(
        base_path,
        f"commit {first}{others} is recorded in the registry as completed, but {HOODIE_DIR}/{first}.commit is "
        f"missing; {state}. {refused} was refused. Restore the commit file from a backup, or give the commit up "
        f"with fg.abandon_commit({first!r}) (its rows are then gone for good)",
    )


def missing_table_error(base_path: Path, recorded: list[str]) -> DamagedTableError:
    """The error for a table whose folder (or ``.hoodie`` folder) is gone while the registry lists its commits."""
    return damaged(
        base_path,
        f"the registry lists {len(recorded)} commit(s) (latest {recorded[-1]}) but there is no table here (no "
        f"{HOODIE_DIR}/{PROPERTIES_FILE}): restore the folder from a backup, or give the commits up with "
        "fg.abandon_commit(...) listing them",
    )
