"""Key layout and value encoding of the online store (chosen for one round trip per vector and fast decoding).

Key:   ``<prefix><project>:<group>:<version>:<schema id>|<entity>``; ``<entity>`` is the online key's values as
       text joined by ``\\x1f`` (ints as decimal, timestamps as epoch microseconds, dates as epoch days, bools 1/0).
       The online key is the primary key, or for a time series (event time in the primary key) the primary key
       without it, so one key holds the entity's latest row. The schema id (hash of column names and types, and
       of the online key when it is not the primary key) is in the key, so a new feature-group version, an added
       column or another key layout never reads values written for another schema.
Value: a 37-byte ASCII header ``<20-digit event time in µs + 10^18><17-digit commit instant>`` that the server
       compares to decide whether a write is newer, then one MessagePack array of the non-key columns in schema
       order (timestamps as µs, dates as days; floats as float64, so NaN, +-inf and -0.0 are served exactly as
       the offline table holds them, and only a null is nil/None). Arrays of positional values are ~3x smaller
       and faster to decode than per-field hashes, and a batch of values decodes in one C call (see
       :func:`decode_many`).
Requests: a key value must have its column's declared type (see :func:`_scalar_key_text`): ``"1"`` or
       ``1.0`` never finds the entity with int key 1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Sequence

import msgpack
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fs_dagster.core.errors import DamagedOnlineValueError, InvalidDataError

HEADER_BYTES = 37
EVENT_OFFSET = 10**18  # keeps pre-1970 event times positive so fixed-width digits compare in order
KEY_SEPARATOR = "\x1f"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EPOCH_DATE = date(1970, 1, 1)
NO_EVENT_TIME = EVENT_OFFSET  # static groups (no event time): only the commit instant orders writes


@dataclass(frozen=True)
class OnlineLayout:
    """How one feature-group version is laid out online: key prefix, key columns and value columns."""

    prefix: str  # up to and including the schema id and '|'
    key_columns: tuple[str, ...]
    key_types: tuple[pa.DataType, ...]
    value_columns: tuple[str, ...]
    value_types: tuple[pa.DataType, ...]
    event_time: str | None

    @classmethod
    def build(
        cls, key_prefix: str, project: str, name: str, version: int, schema: pa.Schema,
        primary_key: Sequence[str], event_time: str | None, online_key: Sequence[str] | None = None,
    ) -> OnlineLayout:
        """The layout of a feature-group version; ``online_key``: the entity key when it is not the primary key
        (a time series served by entity: one value per entity, the latest; the event time is then a value)."""
        keys = tuple(online_key if online_key is not None else primary_key)
        described = ";".join(f"{f.name}:{f.type}" for f in schema)
        if keys != tuple(primary_key):  # another key layout: a schema id of its own, so no old key is read
            described += ";online key:" + ",".join(keys)
        fingerprint = hashlib.sha1(described.encode(), usedforsecurity=False).hexdigest()[:8]
        values = tuple(f.name for f in schema if f.name not in keys)
        return cls(
            prefix=f"{key_prefix}{project}:{name}:{version}:{fingerprint}|",
            key_columns=keys,
            key_types=tuple(schema.field(k).type for k in keys),
            value_columns=values,
            value_types=tuple(schema.field(v).type for v in values),
            event_time=event_time,
        )

    @property
    def sync_marker_key(self) -> str:
        """Where the last commit synced into this layout is recorded (in Valkey itself, so a wiped server resyncs)."""
        return self.prefix[:-1] + ":_synced"

    # --- writing (vectorized over an Arrow table) -----------------------------------------------------------

    def encode_keys(self, table: pa.Table) -> list[bytes]:
        return self.key_array(table).to_pylist()

    def key_array(self, table: pa.Table) -> pa.Array:
        """The rows' keys as one ``large_binary`` array (what :meth:`encode_keys` lists)."""
        for column in self.key_columns:
            if table[column].null_count:
                raise InvalidDataError(f"key column {column!r} has {table[column].null_count} null value(s)")
        parts = [_key_text(table[c]) for c in self.key_columns]
        joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, KEY_SEPARATOR)
        prefixed = pc.binary_join_element_wise(pa.scalar(self.prefix), joined, "")
        return _single(prefixed).cast(BINARY)

    def encode_values(
        self, table: pa.Table, instants: str | Sequence[str] | pa.Array | pa.ChunkedArray
    ) -> list[bytes]:
        """Header + payload per row; ``instants`` is one commit instant or one per row (the commit that wrote it)."""
        return self.encode_rows(table, instants, keys=False).values().to_pylist()

    def encode_rows(
        self, table: pa.Table, instants: str | Sequence[str] | pa.Array | pa.ChunkedArray, keys: bool = True,
        key_array: pa.Array | None = None,
    ) -> EncodedRows:
        """Keys (unless ``keys=False``; ``key_array`` if already built) and values of every row, vectorized: each
        value column is packed in one go into exactly the bytes MessagePack gives row by row
        (:meth:`encode_values_rowwise`, still used for column types without a vectorized packer). Raises
        InvalidDataError as the row-wise encoder does."""
        if key_array is None and keys:
            key_array = self.key_array(table)
        n = table.num_rows
        vectorized = self._vectorized_value_parts(table, instants)
        if vectorized is None:
            values = pa.array(self.encode_values_rowwise(table, instants), BINARY)
            return EncodedRows(key_array, (values,), _lengths(values))
        parts, header_parts = vectorized
        parts, header_parts = _merge_fixed(parts, header_parts, n)
        lengths = np.zeros(n, dtype=np.int64)
        for part in parts:
            lengths += _lengths(part) if isinstance(part, pa.Array) else len(part.as_py())
        return EncodedRows(key_array, tuple(parts), lengths, header_parts=header_parts)

    def _vectorized_value_parts(self, table: pa.Table, instants: Any) -> tuple[list[pa.Array | pa.Scalar], int] | None:
        """Header and packed columns of every row, and how many parts the header is (None: some column needs the
        row-wise encoder)."""
        n = table.num_rows
        if self.event_time:
            micros = self._event_micros(table)
            events = micros + EVENT_OFFSET  # (int64, as the row-wise encoder computes it)
            if n and events.min() < 0:
                return None  # before year -29,700: the row-wise encoder's text
            text = pa.array(events, pa.int64()).cast(pa.string())
            if n and events.min() < 10**19 // 10:
                text = pc.utf8_lpad(text, 20, "0")
                head: list[pa.Array | pa.Scalar] = [text.cast(BINARY)]
            else:
                head = [pa.scalar(b"0", BINARY), text.cast(BINARY)]
        else:
            head = [pa.scalar(b"%020d" % NO_EVENT_TIME, BINARY)]
        suffix = _instant_column(instants, n)
        if suffix is None:
            return None
        columns: list[pa.Array] = []
        for name in self.value_columns:
            packed = _msgpack_parts(_single(table[name]))
            if packed is None:
                return None
            columns += packed
        parts = [*head, suffix, pa.scalar(_array_header(len(self.value_columns)), BINARY), *columns]
        if not any(isinstance(p, pa.Array) for p in parts):  # one row shape for all: still one value per row
            parts[0] = pa.nulls(n, BINARY).fill_null(parts[0])
        return parts, len(head) + 1

    def _event_micros(self, table: pa.Table) -> np.ndarray:
        column = table[self.event_time]
        if column.null_count:  # (to_numpy would turn the column into float64 and round every header)
            raise InvalidDataError(f"event time column {self.event_time!r} has {column.null_count} null value(s)")
        return column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()

    def encode_values_rowwise(
        self, table: pa.Table, instants: str | Sequence[str] | pa.Array | pa.ChunkedArray
    ) -> list[bytes]:
        """The reference encoder: one MessagePack call per row (slow; any column type msgpack packs)."""
        n = table.num_rows
        if isinstance(instants, (pa.Array, pa.ChunkedArray)):
            instants = instants.to_pylist()
        if self.event_time:
            events = (self._event_micros(table) + EVENT_OFFSET).tolist()
        else:
            events = [NO_EVENT_TIME] * n
        if isinstance(instants, str):
            suffixes = [_instant_bytes(instants)] * n
        else:
            memo: dict[str, bytes] = {}
            suffixes = [memo.get(i) or memo.setdefault(i, _instant_bytes(i)) for i in instants]
            if len(suffixes) != n:
                raise InvalidDataError(f"{len(suffixes)} commit instants for {n} rows")
        columns = [_plain_values(table[c]) for c in self.value_columns]
        pack = msgpack.Packer(autoreset=True).pack
        rows = zip(*columns) if columns else ((),) * n
        return [b"%020d%s%s" % (event, suffix, pack(row)) for event, suffix, row in zip(events, suffixes, rows)]

    # --- reading ---------------------------------------------------------------------------------------------

    def key_for(self, entity: Sequence[Any]) -> bytes:
        """The key of one entity from its primary-key values (same text as :meth:`encode_keys`)."""
        if len(entity) != len(self.key_columns):
            raise InvalidDataError(f"expected values for {list(self.key_columns)}, got {list(entity)!r}")
        parts = [_scalar_key_text(v, t, c) for v, t, c in zip(entity, self.key_types, self.key_columns)]
        return (self.prefix + KEY_SEPARATOR.join(parts)).encode()

    def keys_for(self, columns: Sequence[Sequence[Any]]) -> list[bytes]:
        """Keys of many entities given column-wise (one sequence per key column): :meth:`key_for` of each, with
        the type dispatch done once per column (and a timestamp's text once per distinct value)."""
        texts = self.key_texts(columns)
        prefix = self.prefix
        if len(texts) == 1:
            return [(prefix + text).encode() for text in texts[0]]
        if len(texts) == 2:  # the common composite key: one format call per key instead of a join
            return [f"{prefix}{a}\x1f{b}".encode() for a, b in zip(*texts)]
        return [(prefix + KEY_SEPARATOR.join(parts)).encode() for parts in zip(*texts)]

    def key_texts(self, columns: Sequence[Sequence[Any]]) -> list[list[str]]:
        """Per key column, the key text of each entity's value (a key is :attr:`prefix` + these texts joined by
        :data:`KEY_SEPARATOR`, encoded as UTF-8); raises InvalidDataError as :meth:`key_for` does."""
        if len(columns) != len(self.key_columns):
            raise InvalidDataError(f"expected values for {list(self.key_columns)}, got {len(columns)} column(s)")
        return [_key_texts(col, t, c) for col, t, c in zip(columns, self.key_types, self.key_columns)]

    def value_converters(self) -> list[Any]:
        """Per value column: the function that turns its decoded value into the Python type, or None."""
        return [_converter(t) for t in self.value_types]

    def decode_many(self, raw: Iterable[bytes | None]) -> list[tuple | None]:
        """Values (or None for missing keys) -> tuples of the value columns in Python types."""
        raw = list(raw)
        present = [v for v in raw if v is not None]
        if not present:
            return [None] * len(raw)
        # one C call for the whole batch: wrap the payloads in a MessagePack array32
        blob = b"\xdd" + len(present).to_bytes(4, "big") + b"".join(v[HEADER_BYTES:] for v in present)
        decoded = iter(msgpack.unpackb(blob, use_list=False))
        converters = [_converter(t) for t in self.value_types]
        needs = any(c is not None for c in converters)
        out: list[tuple | None] = []
        for value in raw:
            if value is None:
                out.append(None)
                continue
            row = next(decoded)
            if len(row) != len(converters):
                raise ValueError(f"a value that is not an array of {len(converters)}")
            if needs:
                row = tuple(v if conv is None or v is None else conv(v) for v, conv in zip(row, converters))
            out.append(row)
        return out


def _instant_bytes(instant: str) -> bytes:
    """A commit instant as the header's 17 digits (``yyyyMMddHHmmssSSS``); the 14-digit instants of older Hudi
    tables get Hudi's own millisecond suffix ``999``, anything else would shift the header and is refused."""
    if len(instant) == 14 and instant.isdigit():
        instant += "999"
    if len(instant) != HEADER_BYTES - 20 or not (instant.isascii() and instant.isdigit()):
        raise InvalidDataError(f"commit instant {instant!r} is not a 17-digit Hudi instant (yyyyMMddHHmmssSSS)")
    return instant.encode()


def decode_present(raw: Sequence[bytes], width: int | None = None) -> tuple[tuple, ...]:
    """The value tuples of stored values (none missing), in one C call, without Python types for timestamps and
    dates (see :meth:`OnlineLayout.value_converters`).

    Raises:
        ValueError: a value does not decode, or (``width`` given) is not an array of ``width`` values.
    """
    blob = b"\xdd" + len(raw).to_bytes(4, "big") + b"".join([v[HEADER_BYTES:] for v in raw])
    rows = msgpack.unpackb(blob, use_list=False)
    if width is not None and rows and set(map(len, rows)) != {width}:
        raise ValueError(f"a value that is not an array of {width}")
    return rows


def decode_vectors(raw: Sequence[bytes], n: int, layouts: Sequence[OnlineLayout]) -> list[list[Any]]:
    """Per entity, the values of every layout in turn as one list, from ``raw`` = layout 0's ``n`` stored values,
    then layout 1's, ... (none missing); timestamps and dates stay numbers, as in :func:`decode_present`.

    One C call builds the lists: each value's header and array header are cut off (the array header has one
    length per layout, as the layout fixes the number of values), and every entity's payloads are put after one
    array header for all of their values, so MessagePack itself returns the concatenated rows."""
    count = len(layouts)
    parts: list[bytes] = [_array_header(sum(len(layout.value_columns) for layout in layouts))] * (n * (count + 1))
    for g, layout in enumerate(layouts):
        skip = HEADER_BYTES + len(_array_header(len(layout.value_columns)))
        parts[g + 1 :: count + 1] = [value[skip:] for value in raw[g * n : (g + 1) * n]]
    return msgpack.unpackb(b"\xdd" + n.to_bytes(4, "big") + b"".join(parts), use_list=True)


def check_values(raw: Sequence[bytes | None], layout: OnlineLayout, key_of: Callable[[int], Any]) -> None:
    """Raises DamagedOnlineValueError naming the first of ``raw`` that is not a value fs-dagster wrote for
    ``layout`` (its header and one MessagePack array of the layout's values), as ``key_of(its index)``; called
    when a batch does not decode, to say which value is damaged."""
    for index, value in enumerate(raw):
        if value is None:
            continue
        problem = None
        if len(value) <= HEADER_BYTES or not value[:HEADER_BYTES].isdigit():
            problem = f"no {HEADER_BYTES}-digit header"
        else:
            try:
                decoded = msgpack.unpackb(value[HEADER_BYTES:], use_list=False)
            except (ValueError, TypeError) as exc:  # (msgpack's errors, UnicodeDecodeError, are ValueErrors)
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if not isinstance(decoded, tuple) or len(decoded) != len(layout.value_columns):
                    problem = f"not an array of its {len(layout.value_columns)} value columns"
        if problem:
            group = layout.prefix.rstrip("|").split(":")
            raise DamagedOnlineValueError(
                f"online value of feature group {group[-3]} v{group[-2]} for {key_of(index)} is damaged or was "
                f"not written by fs-dagster ({problem}; {len(value)} bytes); delete the key and resync "
                f"(fg.sync_online(full=True)) to serve it again"
            )


def header_of(value: bytes) -> tuple[int, str]:
    """(event time µs, commit instant) of a stored value."""
    return int(value[:20]) - EVENT_OFFSET, value[20:HEADER_BYTES].decode()


def _key_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = column.type
    if pa.types.is_timestamp(t):
        return column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).cast(pa.string())
    if pa.types.is_date(t):
        return column.cast(pa.date32()).cast(pa.int32()).cast(pa.string())
    if pa.types.is_boolean(t):
        return column.cast(pa.int8()).cast(pa.string())
    return column.cast(pa.string())


def _scalar_key_text(value: Any, arrow_type: pa.DataType, column: str) -> str:
    """The key text of one requested primary-key value, accepted only in the column's declared type family (the
    types a write of that column accepts), so a lookup never matches another entity by a lenient conversion:

    - integer columns: ``int`` or a numpy integer (not ``bool``, ``str`` or ``float``: ``"1"`` or ``1.0`` is refused);
    - string columns: ``str`` only;
    - timestamp columns: ``datetime`` (pandas ``Timestamp`` included; naive values are UTC, as writes take them),
      ``numpy.datetime64`` or an ISO 8601 string (``"2013-01-01T10:00:00Z"``);
    - date columns: ``date`` (not a ``datetime``) or an ISO date string (``"2013-01-01"``);
    - boolean columns: ``bool`` or ``numpy.bool_``; floating columns: ``float``, numpy floats or ints.

    Raises:
        InvalidDataError: naming the column, the value and the declared type.
    """
    if value is None or (type(value) is not str and value != value):  # None, NaN, NaT
        raise InvalidDataError(f"key column {column!r} is missing or null in the request")
    if pa.types.is_integer(arrow_type):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return str(int(value))
        raise _wrong_key_type(value, arrow_type, column, "an int")
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        if isinstance(value, str):
            return str(value)
        raise _wrong_key_type(value, arrow_type, column, "a str")
    if pa.types.is_timestamp(arrow_type):
        if not isinstance(value, (datetime, str, np.datetime64)):
            raise _wrong_key_type(value, arrow_type, column, "a datetime or an ISO 8601 string")
        try:
            moment = _to_datetime(value)
            return str((moment - EPOCH) // _ONE_MICROSECOND)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidDataError(f"key column {column!r}: {value!r} is not a valid {arrow_type}") from exc
    if pa.types.is_date(arrow_type):
        if isinstance(value, date) and not isinstance(value, datetime):
            return str((value - EPOCH_DATE).days)
        if isinstance(value, str):
            try:
                return str((date.fromisoformat(value) - EPOCH_DATE).days)
            except ValueError as exc:
                raise InvalidDataError(f"key column {column!r}: {value!r} is not a valid {arrow_type}") from exc
        raise _wrong_key_type(value, arrow_type, column, "a date or an ISO date string")
    if pa.types.is_boolean(arrow_type):
        if isinstance(value, (bool, np.bool_)):
            return "1" if value else "0"
        raise _wrong_key_type(value, arrow_type, column, "a bool")
    if pa.types.is_floating(arrow_type):
        if isinstance(value, (float, int, np.floating, np.integer)) and not isinstance(value, bool):
            return pa.scalar(float(value), arrow_type).cast(pa.string()).as_py()
        raise _wrong_key_type(value, arrow_type, column, "a float")
    return str(value)  # a type fs-dagster does not create itself (e.g. a Spark table's decimal)


def _wrong_key_type(value: Any, arrow_type: pa.DataType, column: str, wanted: str) -> InvalidDataError:
    return InvalidDataError(
        f"key column {column!r} is {arrow_type}, but the request has {value!r} ({type(value).__name__}); give "
        f"{wanted} (keys are compared by their declared type, so another type never matches another entity)"
    )


_ONE_MICROSECOND = timedelta(microseconds=1)


def _key_texts(values: Sequence[Any], arrow_type: pa.DataType, column: str) -> list[str]:
    """:func:`_scalar_key_text` of each value, with fast paths for the usual Python types (same text)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        if set(map(type, values)) <= {str}:  # (C loops)
            return values if isinstance(values, list) else list(values)
        return [v if type(v) is str else _scalar_key_text(v, arrow_type, column) for v in values]
    if pa.types.is_integer(arrow_type):
        if set(map(type, values)) <= {int}:  # (C loops)
            return list(map(str, values))
        return [str(v) if type(v) is int else _scalar_key_text(v, arrow_type, column) for v in values]
    if pa.types.is_timestamp(arrow_type):
        memo: dict[datetime, str] = {}
        out = []
        for v in values:
            if type(v) is datetime and v.tzinfo is not None:
                text = memo.get(v)
                if text is None:
                    try:
                        text = memo[v] = str((v - EPOCH) // _ONE_MICROSECOND)
                    except TypeError:  # a tzinfo without an offset: the generic path names the column
                        text = _scalar_key_text(v, arrow_type, column)
                out.append(text)
            else:
                out.append(_scalar_key_text(v, arrow_type, column))
        return out
    return [_scalar_key_text(v, arrow_type, column) for v in values]


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, np.datetime64):  # (integer microseconds: a float of seconds would round some of them)
        value = EPOCH + timedelta(microseconds=int(value.astype("datetime64[us]").astype(np.int64)))
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _plain_values(column: pa.ChunkedArray) -> list[Any]:
    t = column.type
    if pa.types.is_timestamp(t):
        return column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    if pa.types.is_date(t):
        return column.cast(pa.date32()).cast(pa.int32()).to_pylist()
    return column.to_pylist()  # (floats: NaN stays NaN, null is None, as in the offline table)


def _converter(arrow_type: pa.DataType):
    if pa.types.is_timestamp(arrow_type):
        return lambda micros: EPOCH + timedelta(microseconds=micros)
    if pa.types.is_date(arrow_type):
        return lambda days: EPOCH_DATE + timedelta(days=days)
    return None


# --- vectorized encoding -------------------------------------------------------------------------------------
#
# A value column is packed in one go: numpy computes every element's MessagePack bytes (type tag, then the
# big-endian payload, as msgpack's C packer chooses them: smallest int form, float64, str8/16/32 by UTF-8 length)
# into an n x width byte matrix plus a mask of the bytes each row uses, and the masked bytes become an Arrow
# ``large_binary`` array; Arrow then joins the header and the columns row by row. Same bytes as packing row by row
# (tests/test_online_fastpath.py checks it against msgpack), ~10x less time.

BINARY = pa.large_binary()
_EMPTY = pa.scalar(b"", BINARY)
_COLUMN_INDEX = np.arange(9, dtype=np.int8)
# signed int ranges, by np.searchsorted(side="right"): int64 | int32 | int16 | int8 | fixint | uint8 | uint16 |
# uint32 | uint64 (negative fixint -32..-1 and positive fixint 0..127 are one bucket)
_INT_BOUNDS = np.array([-(2**31), -(2**15), -(2**7), -32, 128, 256, 2**16, 2**32], dtype=np.int64)
_INT_TAGS = np.array([0xD3, 0xD2, 0xD1, 0xD0, 0, 0xCC, 0xCD, 0xCE, 0xCF], dtype=np.uint8)
_INT_WIDTHS = np.array([8, 4, 2, 1, 0, 1, 2, 4, 8], dtype=np.int8)
_FIXINT = 4
_NIL = 0xC0


@dataclass(frozen=True)
class EncodedRows:
    """Rows encoded for the wire: ``keys`` (``large_binary``; None if not asked for) and the values, each the
    concatenation of ``value_parts`` (arrays, or scalars common to every row) with ``value_lengths`` bytes."""

    keys: pa.Array | None
    value_parts: tuple[pa.Array | pa.Scalar, ...]
    value_lengths: np.ndarray
    header_parts: int = 0  # how many leading parts make up the 37-byte header (0: not known)

    def __len__(self) -> int:
        return len(self.value_lengths)

    def values(self) -> pa.Array:
        if len(self.value_parts) == 1:
            return self.value_parts[0]
        return pc.binary_join_element_wise(*self.value_parts, _EMPTY)

    def headers(self) -> np.ndarray:
        """The values' 37-byte headers as a numpy ``S37`` array (byte order compares them as the guard does)."""
        n = len(self)
        if self.header_parts == 1:
            joined = self.value_parts[0]
        elif self.header_parts:
            joined = pc.binary_join_element_wise(*self.value_parts[: self.header_parts], _EMPTY)
        else:
            joined = self.values()
        if not isinstance(joined, pa.Scalar) and _fixed_width(joined) != HEADER_BYTES:
            joined = pc.binary_slice(joined, 0, HEADER_BYTES)
        if isinstance(joined, pa.Scalar):
            return np.full(n, joined.as_py(), dtype=f"S{HEADER_BYTES}")
        offsets = _offsets(joined)
        if int(offsets[-1] - offsets[0]) != n * HEADER_BYTES:  # (a short value: pad each one)
            return np.array(joined.to_pylist(), dtype=f"S{HEADER_BYTES}")
        data = np.frombuffer(joined.buffers()[2], dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]
        return data.view(f"S{HEADER_BYTES}")

    def slice(self, start: int, stop: int) -> EncodedRows:
        parts = tuple(p.slice(start, stop - start) if isinstance(p, pa.Array) else p for p in self.value_parts)
        keys = None if self.keys is None else self.keys.slice(start, stop - start)
        return EncodedRows(keys, parts, self.value_lengths[start:stop], self.header_parts)


class ChunkedEncoding:
    """Rows that are encoded chunk by chunk, when the write pipeline slices them (same interface as
    :class:`EncodedRows` for it: ``len``, ``keys``, ``slice``), so encoding a chunk overlaps with the server
    storing the previous one instead of all encoding happening before the first byte is sent.

    Everything that can refuse the rows is checked up front, so a refused write sends nothing: the keys are built
    for all rows (null keys), the event time and commit instants are validated, and the first chunk is encoded
    eagerly (column types without a vectorized packer fall back to the row-wise encoder there, as later chunks
    would; that encoder depends on column types only, not on values).
    """

    def __init__(self, layout: OnlineLayout, table: pa.Table, instants: str | Sequence[str] | pa.Array | pa.ChunkedArray,
                 first_chunk: int, key_array: pa.Array | None = None) -> None:
        self.layout = layout
        self.table = table
        self.keys = key_array if key_array is not None else layout.key_array(table)
        if not isinstance(instants, str):
            instants = instants if isinstance(instants, (pa.Array, pa.ChunkedArray)) else pa.array(instants, pa.string())
            if len(instants) != table.num_rows:
                raise InvalidDataError(f"{len(instants)} commit instants for {table.num_rows} rows")
            for instant in pc.unique(instants).to_pylist():
                _instant_bytes(instant if instant is not None else "null")
        self.instants = instants
        if layout.event_time and table[layout.event_time].null_count:
            layout._event_micros(table)  # raises, naming the column
        self._first = (first_chunk, self._encode(0, min(first_chunk, table.num_rows)))

    def __len__(self) -> int:
        return self.table.num_rows

    def _encode(self, start: int, stop: int) -> EncodedRows:
        instants = self.instants if isinstance(self.instants, str) else self.instants.slice(start, stop - start)
        return self.layout.encode_rows(self.table.slice(start, stop - start), instants,
                                       key_array=self.keys.slice(start, stop - start))

    def slice(self, start: int, stop: int) -> EncodedRows:
        size, first = self._first
        if stop <= size:
            return first.slice(start, stop)
        return self._encode(start, stop)


def _single(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _offsets(array: pa.Array) -> np.ndarray:
    """The n + 1 offsets of a ``large_binary`` array."""
    return np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]


def _lengths(array: pa.Array) -> np.ndarray:
    return np.diff(_offsets(array.cast(BINARY) if array.type != BINARY else array))


def _fixed_width(array: pa.Array) -> int | None:
    """The byte length of every element of a ``large_binary`` array if they are all alike, else None."""
    lengths = np.diff(_offsets(array))
    if len(lengths) == 0 or (lengths != lengths[0]).any():
        return None
    return int(lengths[0])


def _merge_fixed(parts: list[pa.Array | pa.Scalar], header_parts: int, n: int
                 ) -> tuple[list[pa.Array | pa.Scalar], int]:
    """Neighbouring parts whose elements all have one length (the header, timestamps, floats without nulls,
    small ints, scalars) become one part: a numpy row-wise concatenation, so the row join has fewer arguments.
    The header parts are the start of the first part then (``header_parts`` 1)."""
    if n == 0:
        return parts, header_parts
    widths = [len(p.as_py()) if isinstance(p, pa.Scalar) else _fixed_width(p) for p in parts]
    merged: list[pa.Array | pa.Scalar] = []
    run: list[int] = []

    def close_run() -> None:
        if len(run) == 1:
            merged.append(parts[run[0]])
        elif run:
            matrix = np.empty((n, sum(widths[i] for i in run)), dtype=np.uint8)
            column = 0
            for i in run:
                width, part = widths[i], parts[i]
                if isinstance(part, pa.Scalar):
                    matrix[:, column : column + width] = np.frombuffer(part.as_py(), dtype=np.uint8)
                elif width:
                    offsets = _offsets(part)
                    data = np.frombuffer(part.buffers()[2], dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]
                    matrix[:, column : column + width] = data.reshape(n, width)
                column += width
            merged.append(_ragged(matrix, None, None))
        run.clear()

    first_run_end = None
    for i, width in enumerate(widths):
        if width is None:
            if first_run_end is None:
                first_run_end = i
            close_run()
            merged.append(parts[i])
        else:
            run.append(i)
    if first_run_end is None:
        first_run_end = len(parts)
    close_run()
    if header_parts and first_run_end >= header_parts:  # the header is inside the first (merged) part
        header_parts = 1 if first_run_end > 1 else header_parts
    elif header_parts:
        return parts, header_parts  # (cannot happen: the header parts all have one width)
    return merged, header_parts


def _array_header(size: int) -> bytes:
    if size < 16:
        return bytes([0x90 | size])
    return (b"\xdc" + size.to_bytes(2, "big")) if size < 2**16 else (b"\xdd" + size.to_bytes(4, "big"))


def _instant_column(instants: Any, n: int) -> pa.Array | pa.Scalar | None:
    """The commit instant(s) as header bytes (validated as the row-wise encoder does); None: use that encoder."""
    if isinstance(instants, str):
        return pa.scalar(_instant_bytes(instants), BINARY)
    if isinstance(instants, (pa.Array, pa.ChunkedArray)):
        array = _single(instants)
    else:
        try:
            array = pa.array(instants, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            return None
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)) or array.null_count:
        return None
    fixed = {u: _instant_bytes(u) for u in pc.unique(array).to_pylist()}  # (first invalid one raises, in row order)
    if len(array) != n:
        raise InvalidDataError(f"{len(array)} commit instants for {n} rows")
    if any(b != u.encode() for u, b in fixed.items()):  # 14-digit instants get Hudi's "999"
        array = pc.if_else(pc.equal(pc.utf8_length(array), 14), pc.binary_join_element_wise(array, "999", ""), array)
    return array.cast(BINARY)


def _ragged(matrix: np.ndarray, mask: np.ndarray | None, lengths: np.ndarray | None) -> pa.Array:
    """Row i's masked bytes of ``matrix`` (n x width; every byte if ``mask`` is None) as a large_binary array."""
    n, width = matrix.shape
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    if mask is None:
        np.multiply(np.arange(1, n + 1, dtype=np.int64), width, out=offsets[1:])
        data = matrix.reshape(-1)
    else:
        np.cumsum(lengths, out=offsets[1:])
        data = matrix[mask]
    return pa.Array.from_buffers(BINARY, n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))])


def _tagged(tags: np.ndarray, payload: np.ndarray, widths: np.ndarray) -> pa.Array:
    """One tag byte, then the last ``widths[i]`` bytes of ``payload`` row i (big-endian numbers)."""
    n = len(tags)
    if n == 0:
        return pa.array([], BINARY)
    widest = int(widths.max())
    if widest == 0:
        return _ragged(tags.reshape(n, 1), None, None)
    matrix = np.empty((n, widest + 1), dtype=np.uint8)
    matrix[:, 0] = tags
    matrix[:, 1:] = payload[:, payload.shape[1] - widest :]
    if int(widths.min()) == widest:  # one width for the whole column: every byte, no mask
        return _ragged(matrix, None, None)
    mask = _COLUMN_INDEX[: widest + 1] >= (widest + 1 - widths)[:, None]
    mask[:, 0] = True
    return _ragged(matrix, mask, widths.astype(np.int64) + 1)


def _pack_ints(values: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    n = len(values)
    if values.dtype == np.uint64:
        payload = values.astype(">u8").view(np.uint8).reshape(n, 8)
        huge = values >= np.uint64(2**63)
        values = np.where(huge, np.int64(2**32), values.astype(np.int64))  # (the uint64 bucket)
    else:
        payload = values.astype(">i8").view(np.uint8).reshape(n, 8)
    bucket = np.searchsorted(_INT_BOUNDS, values, side="right")
    tags = _INT_TAGS[bucket]
    widths = _INT_WIDTHS[bucket]
    fixint = bucket == _FIXINT
    if fixint.any():
        tags = np.where(fixint, (values & 0xFF).astype(np.uint8), tags)
    if valid is not None:
        tags = np.where(valid, tags, np.uint8(_NIL))
        widths = np.where(valid, widths, np.int8(0))
    return _tagged(tags, payload, widths)


def _pack_floats(values: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    n = len(values)
    payload = values.astype(">f8").view(np.uint8).reshape(n, 8)
    if valid is None:
        return _tagged(np.full(n, 0xCB, dtype=np.uint8), payload, np.full(n, 8, dtype=np.int8))
    return _tagged(np.where(valid, np.uint8(0xCB), np.uint8(_NIL)), payload, np.where(valid, np.int8(8), np.int8(0)))


def _pack_bytes(column: pa.Array, text: bool, valid: np.ndarray | None) -> list[pa.Array]:
    """str (``text``) or bin: [length headers, bytes] (joined later, with the other parts of the row); null: nil."""
    body = column.cast(BINARY)
    lengths = _lengths(body)
    n = len(lengths)
    if text:
        bucket = np.searchsorted(np.array([32, 256, 2**16]), lengths, side="right")
        tags = np.array([0xA0, 0xD9, 0xDA, 0xDB], dtype=np.uint8)[bucket]
        tags = np.where(bucket == 0, (0xA0 | (lengths & 0x1F)).astype(np.uint8), tags)
        widths = np.array([0, 1, 2, 4], dtype=np.int8)[bucket]
    else:
        bucket = np.searchsorted(np.array([256, 2**16]), lengths, side="right")
        tags = np.array([0xC4, 0xC5, 0xC6], dtype=np.uint8)[bucket]
        widths = np.array([1, 2, 4], dtype=np.int8)[bucket]
    if valid is not None:
        tags = np.where(valid, tags, np.uint8(_NIL))
        widths = np.where(valid, widths, np.int8(0))
        body = body.fill_null(_EMPTY)
    return [_tagged(tags, lengths.astype(">u4").view(np.uint8).reshape(n, 4), widths), body]


def _valid(column: pa.Array) -> np.ndarray | None:
    return None if column.null_count == 0 else column.is_valid().to_numpy(zero_copy_only=False)


def msgpack_column(column: pa.Array) -> pa.Array | None:
    """Every value as MessagePack packs the Python value :func:`_plain_values` gives for it (the same bytes), as a
    ``large_binary`` array; None for types without a vectorized packer (lists, structs, decimals, ...)."""
    parts = _msgpack_parts(column)
    if parts is None or len(parts) == 1:
        return None if parts is None else parts[0]
    return pc.binary_join_element_wise(*parts, _EMPTY)


def _msgpack_parts(column: pa.Array) -> list[pa.Array] | None:
    """:func:`msgpack_column` as parts to be joined (a string column is its length headers, then its bytes)."""
    t = column.type
    if pa.types.is_dictionary(t):
        return _msgpack_parts(column.dictionary_decode())
    if pa.types.is_timestamp(t):
        column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    elif pa.types.is_date(t):
        column = column.cast(pa.date32()).cast(pa.int32())
    t = column.type
    n = len(column)
    if pa.types.is_integer(t):
        unsigned = t == pa.uint64()
        values = column.cast(pa.uint64() if unsigned else pa.int64()).fill_null(0).to_numpy()
        return [_pack_ints(values, _valid(column))]
    if pa.types.is_floating(t):
        values = column.cast(pa.float64()).fill_null(0.0).to_numpy()
        return [_pack_floats(values, _valid(column))]  # NaN, inf, -0.0 are float64 values; null is nil
    if pa.types.is_boolean(t):
        tags = np.where(column.fill_null(False).to_numpy(zero_copy_only=False), np.uint8(0xC3), np.uint8(0xC2))
        valid = _valid(column)
        if valid is not None:
            tags[~valid] = _NIL
        return [_ragged(tags.reshape(n, 1), None, None)]
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _pack_bytes(column, True, _valid(column))
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return _pack_bytes(column, False, _valid(column))
    if pa.types.is_fixed_size_binary(t):
        return _pack_bytes(column.cast(pa.binary()), False, _valid(column))
    if pa.types.is_null(t):
        return [_ragged(np.full((n, 1), _NIL, dtype=np.uint8), None, None)]
    return None
