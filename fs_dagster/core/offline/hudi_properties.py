"""``.hoodie/hoodie.properties``: the table's identity (name, keys, partitioning), read and written the Java way."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from fs_dagster.core.errors import IncompatibleTableError, InvalidDataError
from fs_dagster.core.offline.hudi_schema import AVRO_NAME, check_column_name

HOODIE_DIR = ".hoodie"
PROPERTIES_FILE = "hoodie.properties"
SUPPORTED_TABLE_VERSION = "6"

_SIMPLE_KEYGEN = "org.apache.hudi.keygen.SimpleKeyGenerator"
_COMPLEX_KEYGEN = "org.apache.hudi.keygen.ComplexKeyGenerator"
_NONPARTITIONED_KEYGEN = "org.apache.hudi.keygen.NonpartitionedKeyGenerator"


@dataclass(frozen=True)
class HudiTableConfig:
    """What a Copy-on-Write table is keyed and partitioned by.

    Args:
        name: table name (ASCII letters, digits and ``_``, not starting with a digit: an Avro name).
        record_key_fields: one column (simple key) or several (complex key ``f1:v1,f2:v2``).
        partition_fields: columns whose values name the partition folders; empty for a non-partitioned table.
        precombine_field: ordering column: within one batch, the row with its largest value wins.
        hive_style: ``field=value`` partition folders instead of plain ``value``.
    """

    name: str
    record_key_fields: tuple[str, ...]
    partition_fields: tuple[str, ...] = ()
    precombine_field: str | None = None
    hive_style: bool = True
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # the name is also the Avro record name of every commit's schema (``<name>_record``)
        if not isinstance(self.name, str) or not AVRO_NAME.fullmatch(self.name):
            raise InvalidDataError(
                f"table name {self.name!r}: use ASCII letters, digits and '_', not starting with a digit"
            )
        if not self.record_key_fields:
            raise InvalidDataError(f"table {self.name!r} needs at least one record key field")
        for role, names in (("record key", self.record_key_fields), ("partition", self.partition_fields),
                            ("precombine", (self.precombine_field,) if self.precombine_field else ())):
            for column in names:
                check_column_name(column, f"table {self.name!r}: {role} field")

    @property
    def complex_key(self) -> bool:
        """Spark's ComplexKeyGenerator encodes keys as ``f:v`` pairs; it is used for composite keys or partitions."""
        key_generator = self.extra.get("hoodie.table.keygenerator.class")
        if key_generator:
            return key_generator == _COMPLEX_KEYGEN
        return len(self.record_key_fields) > 1 or len(self.partition_fields) > 1

    def key_generator_class(self) -> str:
        if self.complex_key:
            return _COMPLEX_KEYGEN
        return _SIMPLE_KEYGEN if self.partition_fields else _NONPARTITIONED_KEYGEN

    def to_properties(self, create_schema: str | None) -> dict[str, str]:
        props = {
            "hoodie.table.name": self.name,
            "hoodie.table.type": "COPY_ON_WRITE",
            "hoodie.table.version": SUPPORTED_TABLE_VERSION,
            "hoodie.timeline.layout.version": "1",
            "hoodie.table.timeline.timezone": "UTC",
            "hoodie.table.base.file.format": "PARQUET",
            "hoodie.table.recordkey.fields": ",".join(self.record_key_fields),
            "hoodie.table.keygenerator.class": self.key_generator_class(),
            "hoodie.datasource.write.hive_style_partitioning": str(self.hive_style).lower(),
            "hoodie.datasource.write.partitionpath.urlencode": "false",
            "hoodie.datasource.write.drop.partition.columns": "false",
            "hoodie.populate.meta.fields": "true",
            "hoodie.database.name": "default",
            "hoodie.archivelog.folder": "archived",
        }
        if self.partition_fields:
            props["hoodie.table.partition.fields"] = ",".join(self.partition_fields)
        if self.precombine_field:
            props["hoodie.table.precombine.field"] = self.precombine_field
        if create_schema:
            props["hoodie.table.create.schema"] = create_schema
        return props

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> HudiTableConfig:
        def split(key: str) -> tuple[str, ...]:
            return tuple(v for v in props.get(key, "").split(",") if v)

        return cls(
            name=props["hoodie.table.name"],
            record_key_fields=split("hoodie.table.recordkey.fields"),
            partition_fields=split("hoodie.table.partition.fields"),
            precombine_field=props.get("hoodie.table.precombine.field") or None,
            hive_style=props.get("hoodie.datasource.write.hive_style_partitioning", "false") == "true",
            extra=dict(props),
        )


def _escape(value: str) -> str:
    out = []
    for ch in value:
        if ch in ":=#!\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
    return "".join(out)


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        # the first unescaped '=' or ':' separates key and value
        i = 0
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] in "=:":
                break
            i += 1
        props[_unescape(line[:i].strip())] = _unescape(line[i + 1 :].strip())
    return props


def render_properties(props: dict[str, str]) -> str:
    now = datetime.now(timezone.utc)
    lines = [f"#Updated at {now.isoformat()}", f"#{now.strftime('%a %b %d %H:%M:%S UTC %Y')}"]
    lines += [f"{_escape(k)}={_escape(v)}" for k, v in props.items() if k != "hoodie.table.checksum"]
    database = props.get("hoodie.database.name", "default")
    checksum = zlib.crc32(f"{database}.{props['hoodie.table.name']}".encode())
    lines.append(f"hoodie.table.checksum={checksum}")
    return "\n".join(lines) + "\n"


def read_properties(base_path: Path) -> dict[str, str]:
    path = base_path / HOODIE_DIR / PROPERTIES_FILE
    try:
        return parse_properties(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IncompatibleTableError(f"{base_path} is not a Hudi table (no {HOODIE_DIR}/{PROPERTIES_FILE})") from None


def write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Writes a file so that readers see either the old content or the whole new one (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(base_path: Path, props: dict[str, str]) -> None:
    """Refuses tables this writer must not touch: another table version, or a metadata table it would not update.

    Raises:
        IncompatibleTableError: naming the setting that differs.
    """
    version = props.get("hoodie.table.version")
    if version != SUPPORTED_TABLE_VERSION:
        raise IncompatibleTableError(
            f"{base_path}: hoodie.table.version is {version}, this writer writes only version "
            f"{SUPPORTED_TABLE_VERSION} (the table was created or upgraded by another writer); it stays readable"
        )
    if props.get("hoodie.table.type", "COPY_ON_WRITE") != "COPY_ON_WRITE":
        raise IncompatibleTableError(f"{base_path}: only COPY_ON_WRITE tables can be written here")
    if props.get("hoodie.table.metadata.partitions") or (base_path / HOODIE_DIR / "metadata").exists():
        raise IncompatibleTableError(
            f"{base_path}: the table has a metadata table (enabled by another writer); writing without updating it "
            "would corrupt it, so this writer refuses"
        )
