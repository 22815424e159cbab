"""Silent corruption: base files carry Parquet page checksums; every read that feeds a write (the writer's merge) or
the online store (``read_by_file``) verifies them and refuses a damaged file by name, leaving the table as it was;
``verify_table`` / ``fg.verify()`` / ``fs-dagster verify`` name every bad live file (checksum, truncated, wrong size,
missing). Spark-written tables (parquet-mr writes page checksums too) verify clean; files without checksums (written
before this change) are accepted and reported as such.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fs_dagster import FeatureStore
from fs_dagster.cli import main as cli_main
from fs_dagster.core.errors import CorruptFileError
from fs_dagster.core.offline import hudi_writer
from fs_dagster.core.offline.hudi_properties import HudiTableConfig
from fs_dagster.core.offline.hudi_reader import HudiTableReader
from fs_dagster.core.offline.hudi_verify import has_page_checksums, verify_table
from fs_dagster.core.offline.hudi_writer import HudiWriter
from hudi_testing import (
    data_only,
    flip_bit_in_data_page,
    golden_root,
    listing,
    make_writable_copy,
    rs_read,
    sorted_rows,
)

GOLDEN = golden_root()
GOLDEN_TABLES = sorted(p.name for p in GOLDEN.iterdir() if (p / ".hoodie").is_dir()) if GOLDEN.is_dir() else []
CONFIG = HudiTableConfig("readings", ("id",), ("p",), "ts")


def _rows(ids: list[int], partition: str, ts: int = 1) -> pa.Table:
    return pa.table({
        "id": ids,
        "p": [partition] * len(ids),
        "ts": [ts] * len(ids),
        "v": [i * 1.5 for i in ids],
        "name": [f"name-{i}" for i in ids],
    })


def _table(tmp_path: Path) -> tuple[Path, HudiWriter, dict[str, str]]:
    """A table with one base file in partition x (ids 0..199) and one in y (ids 1000..1009); partition -> file."""
    path = tmp_path / "t"
    writer = HudiWriter(path, CONFIG, durable=False)
    result = writer.upsert(pa.concat_tables([_rows(list(range(200)), "x"), _rows(list(range(1000, 1010)), "y")]))
    return path, writer, {f.partition_path.removeprefix("p="): f.path for f in result.files}


def _live_files(path: Path) -> list[str]:
    from hudi import HudiTable

    return [s.base_file_relative_path() for s in HudiTable(str(path)).get_file_slices()]


def test_base_files_carry_page_checksums_and_hudi_rs_reads_them(tmp_path: Path) -> None:
    path, writer, files = _table(tmp_path)
    writer.upsert(_rows([5, 1000], "x", ts=2))  # a merge rewrites a file: still with checksums
    for fs in _live_files(path):
        assert has_page_checksums(path / fs, pq.ParquetFile(path / fs).metadata), fs
    assert sorted_rows(data_only(rs_read(path))) == sorted_rows(HudiTableReader(path).read())
    report = verify_table(path)
    assert report.ok and report.files_checked == 2 and report.rows_checked == 211  # (1000 is new in x)
    assert report.files_without_checksums == ()


def test_a_flipped_bit_in_a_data_page_is_refused_by_writes_and_sync_reads_and_named_by_verify(tmp_path: Path) -> None:
    path, writer, files = _table(tmp_path)
    bad = path / files["x"]
    flip_bit_in_data_page(bad, "v")
    before = listing(path, include_lock=False)

    report = verify_table(path)
    assert not report.ok and report.files_checked == 2
    [problem] = report.bad_files
    assert problem.path == files["x"]
    assert "CRC checksum verification failed" in problem.reason and "'v'" in problem.reason

    # an update, an insert into the damaged file group (small file) and a delete: each refused naming the file,
    # before anything is written (the wrong values are never copied into a new base file)
    for write in (
        lambda: writer.upsert(_rows([3], "x", ts=2)),
        lambda: writer.upsert(_rows([500], "x")),
        lambda: writer.delete(pa.table({"id": [7], "p": ["x"]})),
        lambda: writer.delete(pa.table({"id": [7]})),  # without partition: every partition searched
    ):
        with pytest.raises(CorruptFileError, match=files["x"]) as caught:
            write()
        assert caught.value.path == str(bad) and "'v'" in str(caught.value)
        assert listing(path, include_lock=False) == before

    # the file-by-file read behind online syncs refuses it too
    with pytest.raises(CorruptFileError, match=files["x"]):
        list(HudiTableReader(path).read_by_file())

    # other file groups are still written (the damage is local to its file group)
    assert writer.upsert(_rows([1001], "y", ts=5)).rows_updated == 1


def test_duckdb_snapshot_reads_do_not_verify_page_checksums(tmp_path: Path) -> None:
    """A fact this design rests on (DuckDB 1.5): a flipped bit in a dictionary-encoded data page comes back from a
    DuckDB snapshot read as another value without any error. Should DuckDB start verifying, this test fails and the
    README's corruption section must be updated."""
    path, _, files = _table(tmp_path)
    good = HudiTableReader(path).read().sort_by("id")
    original = (path / files["x"]).read_bytes()
    silent = []
    for back in range(3, 40):  # find a byte whose flip DuckDB decodes without an error (many make it raise)
        (path / files["x"]).write_bytes(original)
        flip_bit_in_data_page(path / files["x"], "v", back)
        try:
            read = HudiTableReader(path).read().sort_by("id")
        except Exception:  # noqa: BLE001 - DuckDB noticed this one (out-of-range dictionary index...)
            continue
        if read["v"] != good["v"]:
            silent.append(back)
            break
    assert silent, "DuckDB refused every damaged page: it may verify page checksums now"
    assert not verify_table(path).ok  # while verify names the file


def test_truncated_file_is_refused_and_named(tmp_path: Path) -> None:
    path, writer, files = _table(tmp_path)
    bad = path / files["x"]
    size = bad.stat().st_size
    with open(bad, "r+b") as handle:
        handle.truncate(size // 2)
    [problem] = verify_table(path).bad_files
    assert problem.path == files["x"] and f"{size // 2:,} bytes, but commit" in problem.reason
    with pytest.raises(CorruptFileError, match=files["x"]):
        writer.upsert(_rows([3], "x", ts=2))


def test_readable_file_of_the_wrong_size_is_named(tmp_path: Path) -> None:
    """A valid Parquet file, but not the one the commit wrote (its size differs): e.g. replaced by hand."""
    path, _, files = _table(tmp_path)
    target = path / files["x"]
    table = pq.read_table(target)
    pq.write_table(table.slice(0, 150), target, compression="none")
    [problem] = verify_table(path).bad_files
    assert problem.path == files["x"] and "bytes, but commit" in problem.reason


def test_row_count_other_than_recorded_is_named(tmp_path: Path) -> None:
    """The commit metadata records each file's rows (``numWrites``): a file holding another count is named."""
    path, writer, files = _table(tmp_path)
    instant = writer.upsert(_rows([1000], "y", ts=2)).instant
    commit = path / ".hoodie" / f"{instant}.commit"
    meta = json.loads(commit.read_text())
    [stat] = meta["partitionToWriteStats"]["p=y"]
    stat["numWrites"] = 11
    commit.write_text(json.dumps(meta))
    [problem] = verify_table(path).bad_files
    assert (problem.path, problem.reason) == (stat["path"], f"10 rows, but commit {instant} recorded 11")


def test_missing_live_file_is_named(tmp_path: Path) -> None:
    """hudi-rs lists folders: without the newest base file it would serve the file group's previous one (an older
    snapshot) without a word. verify works from the commit metadata and names the missing file."""
    path, writer, files = _table(tmp_path)
    newest = writer.upsert(_rows([3], "x", ts=2)).files[0].path
    os.remove(path / newest)
    report = verify_table(path)
    assert [(b.path, b.reason) for b in report.bad_files] == [(newest, f"missing (written by commit {report.instant})")]


def test_files_without_checksums_are_accepted_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables written before page checksums: verify decodes them fully, passes them and lists them as unverifiable;
    the writer merges from them (nothing to verify) and writes the new base file with checksums."""
    monkeypatch.setattr(hudi_writer, "PAGE_CHECKSUMS", False)
    path, writer, files = _table(tmp_path)
    report = verify_table(path)
    assert report.ok and sorted(report.files_without_checksums) == sorted(files.values())
    monkeypatch.setattr(hudi_writer, "PAGE_CHECKSUMS", True)
    new = writer.upsert(_rows([3], "x", ts=2)).files[0].path
    report = verify_table(path)
    assert report.ok and report.files_without_checksums == (files["y"],)
    assert has_page_checksums(path / new, pq.ParquetFile(path / new).metadata)
    assert sorted_rows(data_only(rs_read(path))) == sorted_rows(HudiTableReader(path).read())


@pytest.mark.skipif(not GOLDEN_TABLES, reason=f"golden tables not found at {GOLDEN}")
@pytest.mark.parametrize("name", GOLDEN_TABLES)
def test_spark_written_tables_verify_clean(name: str, tmp_path: Path) -> None:
    """parquet-mr (Spark) writes page checksums by default: every live file is verified, sizes and row counts
    match the (v6 JSON or v8) commit metadata."""
    path = make_writable_copy(GOLDEN / name, tmp_path / name)
    report = verify_table(path)
    assert report.ok, report.summary()
    assert report.files_checked == len(_live_files(path)) and report.rows_checked == rs_read(path).num_rows
    assert report.files_without_checksums == () and report.notes == ()
    # and a damaged Spark file is named like ours
    rel = _live_files(path)[0]
    with open(path / rel, "r+b") as handle:
        handle.truncate(1000)
    assert [b.path for b in verify_table(path).bad_files] == [rel]


def test_feature_group_verify_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = FeatureStore(root=tmp_path / "store", project="p")
    fg = store.get_or_create_feature_group("readings", primary_key=["id"], event_time="ts", partition_key=["p"])
    assert fg.verify().ok and fg.verify().files_checked == 0  # no data yet
    import pandas as pd

    frame = pd.DataFrame({"id": range(50), "p": ["x"] * 50, "ts": pd.Timestamp("2024-01-01", tz="UTC"),
                          "v": [float(i) for i in range(50)]})
    fg.insert(frame)
    args = ["--root", str(tmp_path / "store"), "--project", "p", "verify", "readings"]
    assert cli_main(args) == 0
    assert "1 file(s)" in capsys.readouterr().out
    [file] = _live_files(fg.path)
    flip_bit_in_data_page(fg.path / file, "v")
    report = fg.verify()
    assert not report.ok and report.bad_files[0].path == file
    assert cli_main(args + ["--version", "1"]) == 1
    out = capsys.readouterr().out
    assert file in out and "1 bad file(s)" in out and "checksum" in out
