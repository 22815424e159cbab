"""Batches of feature vectors as typed columns (Arrow arrays), for ``return_type="pandas"`` and ``"pyarrow"``.

A feature group's stored values of a whole batch are decoded column by column (:func:`decode_columns`), never as a
Python row per entity: by compiled kernels when numba is installed (:mod:`.compiled`, one pass over the rows in
machine code), else (and for what they do not handle) with numpy. Each value is a 37-byte header and a
MessagePack array (see :mod:`.codec`), so with every value of the batch in one buffer, a walk finds where element
``j`` of every row is: from element ``j - 1``'s position and size (read from its type tag, or its length for a long string), a
few numpy calls per column whatever its type. Then the wanted columns are decoded from their tags and positions:
numbers gathered as big-endian 8-byte words (a strided view of the buffer, no copy), all string columns cut out
together into one Arrow string array (one gather, one UTF-8 check) of which each column is a slice. Columns after
the last wanted one are not looked at. An element that runs past its value (a damaged value) or a column type or
tag this decoder does not handle sends the group to the plain path (:func:`stored_values_array` over
MessagePack's rows), which gives the same arrays or names the damaged value.

Types are those of training and batch data (:meth:`FeatureView.get_batch_data`): the offline column's type,
timestamps as ``timestamp[us, tz=UTC]`` (the online store keeps microseconds; pandas gets
``datetime64[us, UTC]``), dates as ``date32``, a null as a null (in pandas: NaN for numbers, None for objects),
NaN as NaN.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.online import compiled
from fs_dagster.core.online.codec import HEADER_BYTES, OnlineLayout, _array_header, _to_datetime
from fs_dagster.core.online.pandas_frames import arrow_to_pandas

TIMESTAMP = pa.timestamp("us", tz="UTC")


def output_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type a feature of ``arrow_type`` (the offline column's) is served as."""
    if pa.types.is_timestamp(arrow_type):
        return TIMESTAMP
    if pa.types.is_date(arrow_type):
        return pa.date32()
    if pa.types.is_dictionary(arrow_type):
        return output_type(arrow_type.value_type)
    return arrow_type


def stored_values_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """Decoded stored values of one column (timestamps as epoch microseconds, dates as epoch days, None for a
    null; see :mod:`.codec`) as a typed array of :func:`output_type`."""
    if pa.types.is_timestamp(arrow_type):
        return pa.array(values, pa.int64()).view(TIMESTAMP)
    if pa.types.is_date(arrow_type):
        return pa.array(values, pa.int32()).view(pa.date32())
    wanted = output_type(arrow_type)
    try:
        return pa.array(values, wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array(values)  # (a type fs-dagster does not write itself: whatever Arrow makes of the values)


def request_values_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """Key values as the request gave them (a feature that is a key column) as a typed array of
    :func:`output_type`; timestamps and dates may be ISO strings, as lookups accept them."""
    wanted = output_type(arrow_type)
    try:
        return pa.array(values, wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        pass
    if pa.types.is_timestamp(wanted):
        return pa.array([None if v is None else _to_datetime(v) for v in values], wanted)
    if pa.types.is_date(wanted):
        return pa.array([date.fromisoformat(v) if isinstance(v, str) else v for v in values], wanted)
    return pa.array(values)


def replaced(array: pa.Array | pa.ChunkedArray, replacements: dict[int, Any], name: str) -> pa.Array:
    """``array`` (feature ``name``) with the values at some positions replaced (``passed_features``), typed as
    ``array`` (an int passed for a float feature becomes a float; a timestamp may be an ISO string).

    Raises:
        InvalidDataError: a passed value does not fit the feature's type, naming feature, value and type.
    """
    values = array.to_pylist()
    for position, value in replacements.items():
        values[position] = value
    try:
        if pa.types.is_timestamp(array.type):
            values = [_to_datetime(v) if isinstance(v, (str, np.datetime64)) else v for v in values]
        return pa.array(values, array.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidDataError(
            f"passed feature {name!r}: {_first_misfit(replacements, array.type)!r} does not fit its type "
            f"{array.type} in a typed frame ({exc}); pass a value of that type (or use return_type='list')"
        ) from exc


def _first_misfit(replacements: dict[int, Any], arrow_type: pa.DataType) -> Any:
    for value in replacements.values():
        try:
            pa.array([_to_datetime(value) if pa.types.is_timestamp(arrow_type) and isinstance(value, str)
                      else value], arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            return value
    return next(iter(replacements.values()))


def to_pandas(table: pa.Table) -> Any:
    """The table as pandas, as training and batch frames are converted (numbers with nulls as float64 NaN,
    ``datetime64[us, UTC]``, strings and dates as objects): exactly ``table.to_pandas(use_threads=False)``
    (one thread: a batch is small, and on a busy machine waiting for a pool thread costs more than the
    conversion), built by :func:`.pandas_frames.arrow_to_pandas` without most of to_pandas' Python overhead
    (1,000 rows x 12 columns: ~0.1 ms instead of ~0.22 ms)."""
    return arrow_to_pandas(table)



# --- numpy decoding of MessagePack rows ----------------------------------------------------------------------

_NIL = 0xC0
_VARIABLE = [0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6]  # str8/16/32, bin8/16/32: a length follows the tag
# size of every MessagePack element our encoder writes, its tag included: fixed-size elements and fixstr (the
# length is in the tag); 0: str/bin with a length field; -1: anything else (e.g. arrays of list columns: not
# handled here)
_SIZE = np.full(256, -1, dtype=np.int64)
_SIZE[0x00:0x80] = 1  # positive fixint
_SIZE[0xE0:0x100] = 1  # negative fixint
_SIZE[[0xC0, 0xC2, 0xC3]] = 1  # nil, false, true
_SIZE[[0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3]] = [2, 3, 5, 9, 2, 3, 5, 9]  # uint8..64, int8..64
_SIZE[[0xCA, 0xCB]] = [5, 9]  # float32, float64
_SIZE[0xA0:0xC0] = 1 + np.arange(32)  # fixstr
_SIZE[_VARIABLE] = 0
_TAIL = np.maximum(_SIZE - 1, 0)  # bytes after the tag of a fixed-size element
# str/bin: bytes of the length after the tag (fixstr: 0, the length is in the tag)
_LENGTH_BYTES = np.zeros(256, dtype=np.int64)
_LENGTH_BYTES[_VARIABLE] = [1, 2, 4, 1, 2, 4]
_LENGTH_SHIFT = np.zeros(256, dtype=np.uint64)  # the length is the first 1/2/4 bytes of the 8 after the tag
_LENGTH_SHIFT[_VARIABLE] = [56, 48, 32, 56, 48, 32]


def _tag_set(*tags: int | range) -> np.ndarray:
    allowed = np.zeros(256, dtype=bool)
    for tag in tags:
        allowed[tag if isinstance(tag, range) else [tag]] = True
    return allowed


_INT_TAGS = _tag_set(range(0x00, 0x80), range(0xE0, 0x100), range(0xCC, 0xD4), _NIL)  # (0xCC..0xD3)
_FLOAT_TAGS = _tag_set(0xCB, _NIL)
_STR_TAGS = _tag_set(range(0xA0, 0xC0), 0xD9, 0xDA, 0xDB, _NIL)
_BIN_TAGS = _tag_set(0xC4, 0xC5, 0xC6, _NIL)
_UNSIGNED_TAGS = _tag_set(range(0x00, 0x80), range(0xCC, 0xD0))
_NO_BYTES = np.empty(0, dtype=np.uint8)
_SIGN_BIT = np.zeros(256, dtype=np.int64)  # sign bit of 1/2/4-byte signed payloads (8-byte ones are int64 already)
_SIGN_BIT[[0xD0, 0xD1, 0xD2]] = [1 << 7, 1 << 15, 1 << 31]
_SHIFT = np.zeros(256, dtype=np.uint64)  # an int payload is the first 1/2/4/8 of the 8 bytes after the tag
_SHIFT[[0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3]] = [56, 48, 32, 0, 56, 48, 32, 0]
_FIXINT = _tag_set(range(0x00, 0x80), range(0xE0, 0x100))


class _Rows:
    """Every stored value of one feature group for a batch, in one buffer, and where each row's elements are."""

    def __init__(self, values: Sequence[bytes], layout: OnlineLayout) -> None:
        n = len(values)
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
        blob = b"".join(values) + bytes(9)  # (8-byte reads after a tag in the last value stay inside)
        self.buffer = np.frombuffer(blob, dtype=np.uint8)
        # the 8 bytes from every offset as one big-endian word: a view of the same memory, no copy
        self.words = np.ndarray((len(blob) - 8,), dtype=">u8", buffer=blob, offset=0, strides=(1,))
        self.floats = np.ndarray((len(blob) - 8,), dtype=">f8", buffer=blob, offset=0, strides=(1,))
        self.ends = np.cumsum(lengths)
        starts = self.ends - lengths
        head = _array_header(len(layout.value_columns))
        self.ok = n == 0 or bool((lengths >= HEADER_BYTES + len(head)).all() and all(
            (self.buffer[starts + HEADER_BYTES + i] == byte).all() for i, byte in enumerate(head)))
        self.first = starts + (HEADER_BYTES + len(head))
        self.n = n

    def walk(self, wanted: set[int], last: int) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
        """Type tags and positions of elements ``wanted`` (value column indices, up to ``last``) of every row,
        found element by element: each step is a few numpy calls over all rows, whatever the types. None: an
        element this decoder does not handle, or one that runs past its value (damaged: MessagePack's row-wise
        decoding then names it)."""
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        position = self.first
        try:
            for index in range(last + 1):
                tags = self.buffer[position]
                size = _SIZE[tags]
                if index in wanted:
                    found[index] = (tags, position)
                if size.min() <= 0:
                    if size.min() < 0:
                        return None
                    lengths = (self.words[position + 1] >> _LENGTH_SHIFT[tags]).astype(np.int64)
                    size = np.where(size == 0, 1 + _LENGTH_BYTES[tags] + lengths, size)
                position = position + size
        except IndexError:  # (a length that points past the buffer)
            return None
        return found if (position <= self.ends).all() else None

    def floats_array(self, tags: np.ndarray, position: np.ndarray) -> pa.Array | None:
        if (tags == 0xCB).all():  # (no nulls: the common case, fewest numpy calls)
            return pa.array(self.floats[position + 1].astype(np.float64))
        if not _FLOAT_TAGS[tags].all():
            return None
        nil = tags == _NIL
        values = self.floats[position + 1].astype(np.float64)
        values[nil] = 0.0
        return pa.array(values, mask=nil)

    def ints(self, tags: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Integers as int64 (and the null mask); None for a tag of another type."""
        top = tags.max()
        if top < 0x80:  # small non-negative ints (hours, counts): positive fixints, the tag is the value
            return tags.astype(np.int64), None
        first = tags[0]
        if (tags == first).all():  # one encoding for every row (e.g. timestamps: all uint64)
            if not _INT_TAGS[first]:
                return None
            if _FIXINT[first]:
                values = tags.view(np.int8).astype(np.int64)
            elif first == _NIL:
                return np.zeros(self.n, dtype=np.int64), np.ones(self.n, dtype=bool)
            else:
                values = (self.words[position + 1] >> _SHIFT[first]).astype(np.int64)
                if _SIGN_BIT[first]:
                    values -= (values & _SIGN_BIT[first]) << 1
            return values, None
        if top <= 0xCF and _UNSIGNED_TAGS[tags].all():  # non-negative: positive fixints and uint8..64
            payload = (self.words[position + 1] >> _SHIFT[tags]).astype(np.int64)
            return np.where(tags < 0x80, tags, payload), None
        if not _INT_TAGS[tags].all():
            return None
        values = (self.words[position + 1] >> _SHIFT[tags]).astype(np.int64)
        sign = _SIGN_BIT[tags]
        values -= (values & sign) << 1  # two's complement of 1/2/4-byte signed payloads
        fixint = _FIXINT[tags]
        values[fixint] = tags[fixint].view(np.int8)
        nil = tags == _NIL
        values[nil] = 0
        return values, (nil if nil.any() else None)

    def bools_array(self, tags: np.ndarray) -> pa.Array | None:
        values = tags == 0xC3
        nil = tags == _NIL
        if not ((tags == 0xC2) | values | nil).all():
            return None
        return pa.array(values, mask=nil if nil.any() else None)

    def bytes_arrays(self, columns: list[tuple[np.ndarray, np.ndarray]], arrow_type: pa.DataType,
                     text: bool) -> list[pa.Array] | None:
        """Str (``text``) or bin columns, all of one ``arrow_type`` (string/binary or their large forms), cut out
        of the buffer together (one gather, one UTF-8 check, no Python object per value) as slices of one array.
        (Tried and slower for the short strings of feature data: a string-view array over the buffer, cast.)"""
        tags = columns[0][0] if len(columns) == 1 else np.concatenate([t for t, _ in columns])
        position = columns[0][1] if len(columns) == 1 else np.concatenate([p for _, p in columns])
        nil = None
        if text and ((tags & 0xE0) == 0xA0).all():  # (short strings, no nulls: the common case)
            lengths = tags & 0x1F
            starts = position + 1
        else:
            if not (_STR_TAGS if text else _BIN_TAGS)[tags].all():
                return None
            lengths = (self.words[position + 1] >> _LENGTH_SHIFT[tags]).astype(np.int64)
            fixstr = (tags & 0xE0) == 0xA0
            lengths[fixstr] = tags[fixstr] & 0x1F
            nil = tags == _NIL
            lengths[nil] = 0
            starts = position + 1 + _LENGTH_BYTES[tags]
        large = pa.types.is_large_string(arrow_type) or pa.types.is_large_binary(arrow_type)
        size = len(tags)
        offsets = np.empty(size + 1, dtype=np.int64 if large else np.int32)
        offsets[0] = 0
        total = int(lengths.sum(dtype=np.int64))
        if total >= 2**31 - 1 and not large:
            return None
        np.cumsum(lengths, out=offsets[1:], dtype=offsets.dtype)
        data = self.buffer[np.repeat(starts - offsets[:-1], lengths) + np.arange(total)] if total else _NO_BYTES
        return _byte_columns(arrow_type, offsets, data, nil, text, self.n)


def decode_columns(values: Sequence[bytes], layout: OnlineLayout, wanted: Sequence[int],
                   use_compiled: bool = True) -> dict[int, pa.Array] | None:
    """The stored values of value columns ``wanted`` (indices into ``layout.value_columns``) of every row, as
    arrays of :func:`output_type` (see module doc); None if a column's type or an element is not one this decoder
    handles (the caller then takes :func:`stored_values_array` over MessagePack's rows: the same arrays). With
    numba installed (and ``use_compiled``), the compiled kernels of :mod:`.compiled` decode the batch; numpy
    decodes what they do not.

    Raises:
        pyarrow.ArrowInvalid: a string that is not UTF-8 (a damaged value).
    """
    if not wanted:
        return {}
    if not values:
        return {i: pa.array([], output_type(layout.value_types[i])) for i in wanted}
    module = compiled.kernels() if use_compiled else None
    if module is not None:
        out = _decode_compiled(module, values, layout, wanted)
        if out is not None:
            return out
    rows = _Rows(values, layout)
    if not rows.ok:
        return None
    elements = rows.walk(set(wanted), max(wanted))
    if elements is None:
        return None
    out: dict[int, pa.Array] = {}
    byte_columns: dict[tuple[pa.DataType, bool], list[int]] = {}  # str/bin columns, cut out together by type
    for index in sorted(elements):
        tags, position = elements[index]
        arrow_type = layout.value_types[index]
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        column: pa.Array | None
        if pa.types.is_floating(arrow_type):
            column = rows.floats_array(tags, position)
            if column is not None and arrow_type != pa.float64():
                column = column.cast(arrow_type)
        elif pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type) or (
                pa.types.is_integer(arrow_type) and arrow_type != pa.uint64()):
            decoded = rows.ints(tags, position)
            column = None if decoded is None else _int_array(*decoded, arrow_type)
        elif pa.types.is_boolean(arrow_type):
            column = rows.bools_array(tags)
        elif pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            byte_columns.setdefault((arrow_type, True), []).append(index)
            continue
        elif pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
            byte_columns.setdefault((arrow_type, False), []).append(index)
            continue
        else:
            return None
        if column is None:
            return None
        out[index] = column
    for (arrow_type, text), indices in byte_columns.items():
        arrays = rows.bytes_arrays([elements[i] for i in indices], arrow_type, text)
        if arrays is None:
            return None
        out.update(zip(indices, arrays))
    return out


def _kind(module: Any, arrow_type: pa.DataType) -> int | None:
    """What a column of ``arrow_type`` is decoded as by the compiled kernels (None: not by them)."""
    if arrow_type == pa.float64() or arrow_type == pa.float32():  # (stored as float64)
        return module.FLOAT
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type) or (
            pa.types.is_integer(arrow_type) and arrow_type != pa.uint64()):
        return module.INT
    if pa.types.is_boolean(arrow_type):
        return module.BOOL
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return module.STR
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return module.BIN
    return None


class _CompiledPlan:
    """What the kernels need to decode columns ``wanted`` of a layout, worked out once per (layout, wanted)."""

    def __init__(self, module: Any, layout: OnlineLayout, wanted: tuple[int, ...]) -> None:
        count = len(layout.value_columns)
        self.slots = np.full(count, -1, dtype=np.int64)  # value column -> output row (-1: not wanted)
        self.kinds = np.full(count, -1, dtype=np.int64)
        self.head = np.frombuffer(_array_header(count), dtype=np.uint8)
        self.columns: list[tuple[int, int, int, pa.DataType]] = []  # (slot, value index, kind, type) of numbers
        self.byte_columns: list[tuple[pa.DataType, bool, list[int]]] = []  # (type, text, slots) cut out together
        self.ok = True
        groups: dict[tuple[pa.DataType, bool], list[int]] = {}
        for slot, index in enumerate(wanted):
            arrow_type = layout.value_types[index]
            if pa.types.is_dictionary(arrow_type):
                arrow_type = arrow_type.value_type
            kind = _kind(module, arrow_type)
            if kind is None:
                self.ok = False
                return
            self.kinds[index], self.slots[index] = kind, slot
            if kind in (module.STR, module.BIN):
                groups.setdefault((arrow_type, kind == module.STR), []).append(slot)
            else:
                self.columns.append((slot, index, kind, arrow_type))
        self.byte_columns = [(arrow_type, text, slots) for (arrow_type, text), slots in groups.items()]
        self.wanted = wanted


# by (id of the layout, wanted): hashing a layout (its tuples of Arrow types) costs more than a decode step; the
# plan keeps its layout, so an id reused by another layout is noticed
_compiled_plans: dict[tuple[int, tuple[int, ...]], tuple[OnlineLayout, _CompiledPlan]] = {}


def _compiled_plan(module: Any, layout: OnlineLayout, wanted: Sequence[int]) -> _CompiledPlan:
    key = (id(layout), tuple(wanted))
    found = _compiled_plans.get(key)
    if found is not None and found[0] is layout:
        return found[1]
    if len(_compiled_plans) >= 256:  # (layouts of many versions over a long-lived process)
        _compiled_plans.clear()
    plan = _CompiledPlan(module, layout, key[1])
    _compiled_plans[key] = (layout, plan)
    return plan


def _decode_compiled(module: Any, values: Sequence[bytes], layout: OnlineLayout,
                     wanted: Sequence[int]) -> dict[int, pa.Array] | None:
    """:func:`decode_columns` by the compiled kernels (:mod:`.compiled`): the same arrays; None for anything they
    do not decode (the numpy decoder then tries)."""
    plan = _compiled_plan(module, layout, wanted)
    if not plan.ok:
        return None
    n, width = len(values), len(plan.wanted)
    blob = b"".join(values)
    buffer = np.frombuffer(blob, dtype=np.uint8)
    ints = np.empty((width, n), dtype=np.int64)
    float_bits = np.empty((width, n), dtype=np.uint64)
    nulls = np.empty((width, n), dtype=np.bool_)
    positions = np.empty((width, n), dtype=np.int64)
    lengths = np.empty((width, n), dtype=np.int64)
    status = module.decode_rows(buffer, n, HEADER_BYTES, plan.head, plan.slots, plan.kinds, ints, float_bits, nulls,
                                positions, lengths)
    if status != module.OK:
        return None
    with_nulls = nulls.any(axis=1).tolist()
    out: dict[int, pa.Array] = {}
    for slot, index, kind, arrow_type in plan.columns:
        nil = nulls[slot] if with_nulls[slot] else None
        column: pa.Array | None
        if kind == module.FLOAT:
            column = pa.array(float_bits[slot].view(np.float64), mask=nil)
            if arrow_type != pa.float64():
                column = column.cast(arrow_type)
        elif kind == module.INT:
            column = _int_array(ints[slot], nil, arrow_type)
            if column is None:
                return None
        else:
            column = pa.array(ints[slot].astype(np.bool_), mask=nil)
        out[index] = column
    for arrow_type, text, slots in plan.byte_columns:
        large = pa.types.is_large_string(arrow_type) or pa.types.is_large_binary(arrow_type)
        count = len(slots) * n
        if len(buffer) >= 2**31 - 1 and not large:
            return None
        offsets = np.empty(count + 1, dtype=np.int64 if large else np.int32)
        data = np.empty(len(buffer), dtype=np.uint8)  # (the strings are parts of the buffer: never more)
        high = module.gather_strings(buffer, positions, lengths, np.array(slots, dtype=np.int64), offsets, data)
        nil = nulls[slots].ravel() if any(with_nulls[slot] for slot in slots) else None
        arrays = _byte_columns(arrow_type, offsets, data[: offsets[-1]], nil, text and high >= 0x80, n)
        out.update((plan.wanted[slot], array) for slot, array in zip(slots, arrays))
    return out


def _byte_columns(arrow_type: pa.DataType, offsets: np.ndarray, data: np.ndarray, nil: np.ndarray | None,
                  check_utf8: bool, rows: int) -> list[pa.Array]:
    """String/binary columns of ``rows`` rows each, cut out together: one array from its ``offsets`` and ``data``
    (null where ``nil``), checked (its UTF-8 too if ``check_utf8``: a str element that is not would fail later,
    in to_pandas; all-ASCII bytes need no check), then sliced per column."""
    validity, nulls = None, 0
    if nil is not None and nil.any():
        validity, nulls = pa.py_buffer(np.packbits(~nil, bitorder="little")), int(nil.sum())
    size = len(offsets) - 1
    array = pa.Array.from_buffers(arrow_type, size, [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
                                  null_count=nulls)
    array.validate(full=check_utf8)
    return [array] if size == rows else [array.slice(start, rows) for start in range(0, size, rows)]


def _int_array(values: np.ndarray, nil: np.ndarray | None, arrow_type: pa.DataType) -> pa.Array | None:
    if pa.types.is_timestamp(arrow_type):
        return pa.array(values, pa.int64(), mask=nil).view(TIMESTAMP)
    if pa.types.is_date(arrow_type):
        return pa.array(values.astype(np.int32), pa.int32(), mask=nil).view(pa.date32())
    array = pa.array(values, pa.int64(), mask=nil)
    if arrow_type != pa.int64():
        try:
            array = array.cast(arrow_type)  # (checked: a value out of the column's range is not wrapped around)
        except pa.ArrowInvalid:
            return None
    return array


def missing_value(layout: OnlineLayout) -> bytes:
    """A stand-in for a missing row: every value column nil (decodes as nulls)."""
    return b"0" * HEADER_BYTES + _array_header(len(layout.value_columns)) + b"\xc0" * len(layout.value_columns)
