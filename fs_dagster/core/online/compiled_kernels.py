"""numba kernels that decode a batch of stored online values (imported only by :mod:`.compiled`, which loads them
when numba is installed: the ``fast`` extra).

A batch is every value of one feature group for the entities of a request, joined into one buffer: per row a
37-digit header, a MessagePack array header and the row's elements (see :mod:`.codec`). :func:`decode_rows` walks
every element of every row once and writes the wanted columns into preallocated arrays; :func:`gather_strings` cuts
the wanted strings out of the buffer into one contiguous data buffer. Rows are found by walking (a value's end is
where its array ends), so the caller needs no per-value lengths; every row's array header must be the layout's
and the walk must end exactly at the buffer's end, so a truncated or foreign value is noticed (the caller then
takes the other decoders, which name it).
"""

from __future__ import annotations

import numba
import numpy as np

INT, FLOAT, BOOL, STR, BIN = 0, 1, 2, 3, 4  # column kinds (what the layout's Arrow type is decoded as)
_NIL = 9
OK, UNHANDLED, DAMAGED = 0, -1, -2  # what decode_rows returns


@numba.njit(cache=True, nogil=True)
def decode_rows(buf, n, header_bytes, head, slots, kinds, ints, float_bits, nulls, str_pos, str_len):  # pragma: no cover (compiled)
    """Decodes ``n`` rows of ``buf``. ``slots[j]``: the output row of value column ``j`` (-1: not wanted);
    ``kinds[j]``: its kind. Writes ints/bools to ``ints``, float64 bit patterns to ``float_bits``, nulls to
    ``nulls``, strings' positions and lengths to ``str_pos``/``str_len``. Returns OK, UNHANDLED (an element type or
    kind this does not decode: an int beyond int64, a float32, an array, ...) or DAMAGED."""
    size_of_buf = buf.shape[0]
    ncols = slots.shape[0]
    p = 0
    for r in range(n):
        if p + header_bytes + head.shape[0] > size_of_buf:
            return DAMAGED
        p += header_bytes  # (not read: as for MessagePack's decoding, only a write compares headers)
        for i in range(head.shape[0]):
            if buf[p + i] != head[i]:
                return DAMAGED
        p += head.shape[0]
        for j in range(ncols):
            if p >= size_of_buf:
                return DAMAGED
            t = np.int64(buf[p])
            size = 1
            cls = -1
            ival = np.int64(0)
            bits = np.uint64(0)
            dpos = 0
            dlen = 0
            if t <= 0x7F:  # positive fixint
                cls = INT
                ival = t
            elif t >= 0xE0:  # negative fixint
                cls = INT
                ival = t - 256
            elif t == 0xC0:
                cls = _NIL
            elif t == 0xC2 or t == 0xC3:
                cls = BOOL
                ival = t - 0xC2
            elif 0xCC <= t <= 0xD3:  # uint8..64, int8..64 (big-endian)
                width = 1 << ((t - 0xCC) & 3)
                if p + 1 + width > size_of_buf:
                    return DAMAGED
                u = np.uint64(0)
                for i in range(width):
                    u = (u << np.uint64(8)) | np.uint64(buf[p + 1 + i])
                if t >= 0xD0 and width < 8 and u >= (np.uint64(1) << np.uint64(8 * width - 1)):
                    ival = np.int64(u) - (np.int64(1) << (8 * width))  # two's complement of a short payload
                elif t == 0xCF and u >= (np.uint64(1) << np.uint64(63)):
                    return UNHANDLED  # (beyond int64)
                else:
                    ival = np.int64(u)
                cls = INT
                size = 1 + width
            elif t == 0xCB:  # float64 (big-endian bits)
                if p + 9 > size_of_buf:
                    return DAMAGED
                for i in range(8):
                    bits = (bits << np.uint64(8)) | np.uint64(buf[p + 1 + i])
                cls = FLOAT
                size = 9
            elif 0xA0 <= t <= 0xBF:  # fixstr
                cls = STR
                dlen = t & 0x1F
                dpos = p + 1
                size = 1 + dlen
            elif t == 0xD9 or t == 0xDA or t == 0xDB or t == 0xC4 or t == 0xC5 or t == 0xC6:  # str/bin 8/16/32
                length_bytes = 1 if (t == 0xD9 or t == 0xC4) else (2 if (t == 0xDA or t == 0xC5) else 4)
                if p + 1 + length_bytes > size_of_buf:
                    return DAMAGED
                for i in range(length_bytes):
                    dlen = (dlen << 8) | np.int64(buf[p + 1 + i])
                dpos = p + 1 + length_bytes
                size = 1 + length_bytes + dlen
                cls = STR if t >= 0xD9 else BIN
            else:
                return UNHANDLED
            s = slots[j]
            if s >= 0:  # (every output cell of a wanted column is written: the caller allocates them empty)
                if cls != _NIL and cls != kinds[j]:
                    return UNHANDLED  # (another type than the column's: the other decoders say what it is)
                nulls[s, r] = cls == _NIL
                ints[s, r] = ival
                float_bits[s, r] = bits
                str_pos[s, r] = dpos
                str_len[s, r] = dlen
            p += size
        if p > size_of_buf:
            return DAMAGED
    return OK if p == size_of_buf else DAMAGED


@numba.njit(cache=True, nogil=True)
def gather_strings(buf, str_pos, str_len, slots, offsets, data):  # pragma: no cover (compiled)
    """Copies the strings of output rows ``slots`` (all of the first's rows, then the next's ...) one after the
    other into ``data``, their end offsets into ``offsets[1:]`` (``offsets[0]`` = 0). Returns the OR of every
    byte copied (below 0x80: all ASCII, so valid UTF-8)."""
    k = 0
    m = 0
    high = 0
    offsets[0] = 0
    n = str_pos.shape[1]
    for s in slots:
        for r in range(n):
            start = str_pos[s, r]
            for j in range(str_len[s, r]):
                byte = buf[start + j]
                data[k] = byte
                high |= byte
                k += 1
            m += 1
            offsets[m] = k
    return high


@numba.njit(cache=True, nogil=True)
def _magnitude(value):  # pragma: no cover (compiled)
    """|value| as uint64 (int64's minimum included)."""
    return np.uint64(-(value + 1)) + np.uint64(1) if value < 0 else np.uint64(value)


@numba.njit(cache=True, nogil=True)
def _decimal_width(value):  # pragma: no cover (compiled)
    """Characters of ``str(value)``."""
    if value == 0:
        return 1
    digits = 1 if value < 0 else 0
    magnitude = _magnitude(value)
    while magnitude > 0:
        digits += 1
        magnitude //= np.uint64(10)
    return digits


@numba.njit(cache=True, nogil=True)
def _write_decimal(out, k, value):  # pragma: no cover (compiled)
    """Writes ``value`` (int64) as decimal text (as ``str(int)``) at ``out[k]``; returns the position after it."""
    if value == 0:
        out[k] = 48
        return k + 1
    end = k + _decimal_width(value)
    if value < 0:
        out[k] = 45  # '-'
    magnitude = _magnitude(value)
    position = end - 1
    while magnitude > 0:
        out[position] = 48 + np.int64(magnitude % np.uint64(10))
        magnitude //= np.uint64(10)
        position -= 1
    return end


@numba.njit(cache=True, nogil=True)
def pack_int_keys(head, prefix, values, out):  # pragma: no cover (compiled)
    """``head``, then for every int key ``$<length>\\r\\n<prefix><decimal>\\r\\n`` (RESP bulk strings) into ``out``
    (large enough: ``len(head) + len(values) * (len(prefix) + 48)``). Returns the bytes written."""
    k = 0
    for i in range(head.shape[0]):
        out[k] = head[i]
        k += 1
    width = prefix.shape[0]
    for i in range(values.shape[0]):
        value = values[i]
        out[k] = 36  # '$'
        k = _write_decimal(out, k + 1, width + _decimal_width(value))
        out[k] = 13
        out[k + 1] = 10
        k += 2
        for j in range(width):
            out[k + j] = prefix[j]
        k = _write_decimal(out, k + width, value)
        out[k] = 13
        out[k + 1] = 10
        k += 2
    return k
