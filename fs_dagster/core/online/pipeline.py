"""Pre-packed, pipelined RESP for the online store's bulk paths on a standalone server (writes and MGET).

valkey-py packs every argument of a command in Python (about a microsecond each; a write batch of 1,000 keys has
2,000). Here the RESP text of all rows comes out of a few Arrow string kernels (``$<len>\r\n<key>\r\n`` ...),
each command is a slice of one buffer, and batches stream over one pooled connection (a thread feeds the socket
while the next chunk is framed). Replies are read with valkey-py's parser, errors arrive as its exception types.

Guarded writes take one of three routes; each key is written by exactly one atomic command, so the outcome is
the guard's (a value is written only if its header is >= the stored one):

* unique keys, no TTL, keys not there yet (probed on the first batch): ``MSETNX`` per batch, which sets every key
  only if none exists, i.e. what the guard does on absent keys, at the cost of a plain ``MSET``; a batch it
  refuses (some key exists) goes to the script;
* unique keys, no TTL, keys that exist: optimistic transactions (:func:`watched_write`): WATCH + MGET, headers
  compared here, MULTI + MSET of the newer ones + EXEC (undone by the server if a key changed meanwhile; retried);
* anything else (repeated keys, TTL, an ACL without those commands): the guarded-set Lua script, in order.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fs_dagster.core.online import compiled
from fs_dagster.core.online.codec import BINARY, HEADER_BYTES, ChunkedEncoding, EncodedRows

CHUNK_BYTES = 1 << 20  # socket writes of about this size
CHUNK_ROWS = 32768  # rows framed at once (rounded to whole batches): the server works while the next is framed
# payloads queued for the sender thread: more than a chunk's worth, so the next chunk is encoded and framed while
# the server still stores this one (bounded memory: ~8 MiB)
MAX_QUEUED_PAYLOADS = 8
BACKGROUND_SEND = True  # writes of more than one chunk: a thread feeds the socket while the next chunk is framed
_DOLLAR = pa.scalar(b"$", BINARY)
_CRLF = pa.scalar(b"\r\n", BINARY)
_CRLF_DOLLAR = pa.scalar(b"\r\n$", BINARY)
_EMPTY = pa.scalar(b"", BINARY)


def chunk_rows(batch_size: int) -> int:
    """Rows framed (and, for big writes, encoded) at once: whole batches, about :data:`CHUNK_ROWS`."""
    return max(batch_size, CHUNK_ROWS // batch_size * batch_size)


def _offsets(array: pa.Array) -> np.ndarray:
    return np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]


def _digits(lengths: np.ndarray) -> pa.Array:
    return pa.array(lengths, pa.int64()).cast(pa.string()).cast(BINARY)


class _Framed:
    """RESP bulk strings of a run of rows in one buffer; ``run(i, j)`` is rows i..j-1 as one memoryview."""

    def __init__(self, array: pa.Array) -> None:
        self.offsets = _offsets(array)
        data = array.buffers()[2]
        self.data = memoryview(data) if data is not None else memoryview(b"")

    def run(self, start: int, stop: int) -> memoryview:
        return self.data[int(self.offsets[start]) : int(self.offsets[stop])]


def frame_pairs(rows: EncodedRows) -> _Framed:
    """``$<len>\\r\\n<key>\\r\\n$<len>\\r\\n<value>\\r\\n`` per row (MSETNX arguments)."""
    key_lengths = np.diff(_offsets(rows.keys))
    return _Framed(pc.binary_join_element_wise(
        _DOLLAR, _digits(key_lengths), _CRLF, rows.keys, _CRLF_DOLLAR, _digits(rows.value_lengths), _CRLF,
        *rows.value_parts, _CRLF, _EMPTY,
    ))


def frame_keys(rows: EncodedRows) -> _Framed:
    key_lengths = np.diff(_offsets(rows.keys))
    return _Framed(pc.binary_join_element_wise(_DOLLAR, _digits(key_lengths), _CRLF, rows.keys, _CRLF, _EMPTY))


def frame_values(rows: EncodedRows) -> _Framed:
    return _Framed(pc.binary_join_element_wise(
        _DOLLAR, _digits(rows.value_lengths), _CRLF, *rows.value_parts, _CRLF, _EMPTY
    ))


class _Stream:
    """Commands buffered into large socket writes; one expectation per command, replies read in order."""

    def __init__(self, connection: Any, background: bool = False) -> None:
        self.connection = connection
        self.buffer: list[Any] = []
        self.size = 0
        self.expected: deque[tuple[int, tuple]] = deque()
        self.sent = 0  # commands handed to send()
        self.flushed = 0  # commands in payloads handed to the socket (or to the sender thread)
        # background: a thread does the (blocking) socket writes, so the next chunk is framed meanwhile
        self.sender = ThreadPoolExecutor(1, thread_name_prefix="fs-online-send") if background else None
        self.inflight: deque[tuple[int, Future]] = deque()  # (first command of the payload, its send)

    def send(self, pieces: Sequence[Any], expectation: tuple) -> None:
        self.buffer.extend(pieces)
        self.size += sum(len(p) for p in pieces)
        self.expected.append((self.sent, expectation))
        self.sent += 1
        if self.size >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            payload = b"".join(self.buffer)
            self.buffer, self.size = [], 0
            first, self.flushed = self.flushed, self.sent
            if self.sender is None:
                self.connection.send_packed_command([payload], check_health=False)
                return
            while len(self.inflight) >= MAX_QUEUED_PAYLOADS:
                self.inflight.popleft()[1].result()
            self.inflight.append((first, self.sender.submit(self.connection.send_packed_command, [payload], False)))

    def close(self, failed: bool) -> None:
        """Waits for the sender thread; after a failure the connection is dropped first (so a blocked write ends)
        and the sender's own errors are not raised again."""
        if self.sender is None:
            return
        if failed:
            self.connection.disconnect()
        try:
            for _, future in self.inflight:
                try:
                    future.result()
                except Exception:
                    if not failed:
                        raise
        finally:
            self.inflight.clear()
            self.sender.shutdown(wait=True)

    def read(self) -> tuple[tuple, Any]:
        """The next expectation and its reply (an exception instance for an error reply)."""
        number, expectation = self.expected.popleft()
        while self.inflight and self.inflight[0][0] <= number:  # its payload must be on the socket
            self.inflight.popleft()[1].result()
        try:
            return expectation, self.connection.read_response(disable_decoding=True)
        except Exception as exc:  # an error reply; the connection stays in step (socket errors disconnect)
            from valkey.exceptions import ResponseError

            if isinstance(exc, ResponseError):
                return expectation, exc
            raise


def _reply(connection: Any) -> Any:
    """The next reply, or the exception instance of an error reply."""
    from valkey.exceptions import ResponseError

    try:
        return connection.read_response(disable_decoding=True)
    except ResponseError as exc:
        return exc


class _AclRefused(Exception):
    pass


def _compare(reply: list[bytes | None], headers: np.ndarray) -> np.ndarray:
    """Which new values may be written: header >= the stored one's (or nothing stored)."""
    stored = np.array([b"" if v is None else v[:HEADER_BYTES] for v in reply], dtype=f"S{HEADER_BYTES}")
    return stored <= headers


def watched_write(connection: Any, rows: EncodedRows | ChunkedEncoding, batch_size: int, start: int
                  ) -> tuple[int, list[tuple[int, int]], int, bool]:
    """Guarded writes of unique keys as optimistic transactions, no script: per batch, WATCH and MGET its keys,
    compare the headers here, then MULTI, MSET of the newer values, EXEC (which does nothing if a watched key
    changed meanwhile: that batch is tried again, later). The EXEC of a batch is sent with the WATCH + MGET of
    the next, so a batch costs one round trip, and the server does ~3x less work than the guarded-set script.

    Returns (keys written, row ranges left to the script, first row not tried, whether the ACL refused WATCH,
    MULTI or MSET: then everything from that row on goes to the script).
    """
    from valkey.exceptions import NoPermissionError

    n = len(rows)
    stream = _Stream(connection)
    written = 0
    retry: list[tuple[int, int]] = []
    to_script: list[tuple[int, int]] = []

    def check(reply: Any) -> Any:
        if isinstance(reply, NoPermissionError):
            raise _AclRefused()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def send_read(keys: _Framed, a: int, b: int) -> None:
        head = b"*%d\r\n" % (b - a + 1)
        run = keys.run(a, b)
        stream.send((head, b"$5\r\nWATCH\r\n", run, head, b"$4\r\nMGET\r\n", run), ())

    def send_write(pairs: _Framed, ok: np.ndarray, a: int, b: int) -> int:
        count = int(ok.sum())
        if count == 0:
            stream.send((b"*1\r\n$7\r\nUNWATCH\r\n",), ())
        elif count == b - a:
            payload = pairs.run(a, b)
        else:
            payload = b"".join([pairs.run(i, i + 1) for i in (np.flatnonzero(ok) + a).tolist()])
        if count:
            stream.send((b"*1\r\n$5\r\nMULTI\r\n*%d\r\n$4\r\nMSET\r\n" % (1 + 2 * count), payload,
                         b"*1\r\n$4\r\nEXEC\r\n"), ())
        return count

    def settle(pending: tuple[int, int, int]) -> None:
        nonlocal written
        a, b, count = pending
        if count == 0:
            check(_reply(connection))  # UNWATCH
            return
        replies = [_reply(connection) for _ in range(3)]  # MULTI, MSET (QUEUED), EXEC
        for reply in replies[:2]:
            check(reply)
        if check(replies[2]) is None:  # a watched key changed: again, later
            retry.append((a, b))
        else:
            written += count

    pending: tuple[int, int, int] | None = None
    position = start
    step = chunk_rows(batch_size)
    try:
        for chunk_start in range(start, n, step):
            chunk = rows.slice(chunk_start, min(n, chunk_start + step))
            keys, pairs, headers = frame_keys(chunk), frame_pairs(chunk), chunk.headers()
            for a in range(0, len(chunk), batch_size):
                b = min(len(chunk), a + batch_size)
                send_read(keys, a, b)
                stream.flush()
                position = chunk_start + a
                if pending is not None:
                    settle(pending)
                    pending = None
                check(_reply(connection))  # WATCH
                ok = _compare(check(_reply(connection)), headers[a:b])
                pending = (chunk_start + a, chunk_start + b, send_write(pairs, ok, a, b))
                stream.flush()
        if pending is not None:
            settle(pending)
            pending = None
        position = n
        for attempt in range(3):  # batches whose keys changed meanwhile, one by one
            again, retry[:] = list(retry), []
            for a, b in again:
                part = rows.slice(a, b)
                send_read(frame_keys(part), 0, b - a)
                stream.flush()
                check(_reply(connection))
                ok = _compare(check(_reply(connection)), part.headers())
                count = send_write(frame_pairs(part), ok, 0, b - a)
                stream.flush()
                settle((a, b, count))
        to_script += retry  # still contended: the script does them atomically
    except _AclRefused:
        connection.disconnect()  # replies may still be on the way; a fresh connection is simpler
        if pending is not None:
            to_script.append(pending[:2])
        to_script += retry
        return written, to_script, position, True
    return written, to_script, n, False


def guarded_write(
    connection: Any, rows: EncodedRows | ChunkedEncoding, ttl: int, batch_size: int, sha: str, source: str, unique: bool,
    try_msetnx: bool, try_watch: bool = False,
) -> tuple[int, bool, bool]:
    """Writes ``rows`` through the guard over ``connection``; returns (keys written, MSETNX refused by the ACL,
    WATCH/MULTI refused by the ACL). ``try_watch``: existing keys go to :func:`watched_write` (unique keys, no TTL).

    ``unique``: the keys are unique, so batches may be applied in any order; ``try_msetnx`` only then and without
    TTL (see module doc). The script is loaded (pipelined) before its first call; if the server loses it mid-write,
    batches are retried when order does not matter, else the NOSCRIPT error is raised. Raises the first error reply
    (the caller then drops the connection) or valkey-py's connection errors.
    """
    stream = _Stream(connection, background=BACKGROUND_SEND and len(rows) > CHUNK_ROWS)
    try:
        result = _guarded_write(stream, connection, rows, ttl, batch_size, sha, source, unique, try_msetnx, try_watch)
    except BaseException:
        stream.close(failed=True)
        raise
    stream.close(failed=False)
    return result


def _guarded_write(
    stream: _Stream, connection: Any, rows: EncodedRows | ChunkedEncoding, ttl: int, batch_size: int, sha: str, source: str,
    unique: bool, try_msetnx: bool, try_watch: bool,
) -> tuple[int, bool, bool]:
    from valkey.exceptions import NoPermissionError, NoScriptError

    n = len(rows)
    sha_bulk = b"$%d\r\n%s\r\n" % (len(sha), sha.encode())
    ttl_bulk = b"$%d\r\n%d\r\n" % (len(str(ttl)), ttl)
    state = {"written": 0, "loads": 0, "refused": False, "msetnx": try_msetnx}

    def load() -> None:
        state["loads"] += 1
        stream.send((connection.pack_command("SCRIPT", "LOAD", source)[0],), ("load", None, 0, 0, 0))

    def send_script(chunk: EncodedRows, start: int, stop: int, framed: tuple[_Framed, _Framed] | None = None) -> None:
        if not state["loads"]:
            load()  # (one round trip shared with the batches; a script the server has is not compiled again)
        if framed is None:
            part = chunk.slice(start, stop)
            keys, values, a, b = frame_keys(part), frame_values(part), 0, stop - start
        else:
            (keys, values), a, b = framed, start, stop
        m = stop - start
        head = b"*%d\r\n$7\r\nEVALSHA\r\n%s$%d\r\n%d\r\n" % (4 + 2 * m, sha_bulk, len(str(m)), m)
        stream.send((head, keys.run(a, b), ttl_bulk, values.run(a, b)), ("script", chunk, start, stop, state["loads"]))

    def send_msetnx(chunk: EncodedRows, pairs: _Framed, start: int, stop: int) -> None:
        head = b"*%d\r\n$6\r\nMSETNX\r\n" % (1 + 2 * (stop - start))
        stream.send((head, pairs.run(start, stop)), ("msetnx", chunk, start, stop, 0))

    def handle(expectation: tuple, reply: Any) -> None:
        kind, chunk, start, stop, loads_at_send = expectation
        if kind == "msetnx":
            if isinstance(reply, NoPermissionError):  # the ACL does not grant MSETNX: the script does it all
                state["refused"], state["msetnx"] = True, False
            elif isinstance(reply, Exception):
                raise reply
            elif int(reply) == 1:
                state["written"] += stop - start
                return
            send_script(chunk, start, stop)
        elif kind == "script":
            if isinstance(reply, NoScriptError):  # the server lost the script mid-write (restart, SCRIPT FLUSH)
                if not unique:  # a retry would apply this batch after later ones, which may share keys
                    raise reply
                if loads_at_send == state["loads"]:  # no load sent since this call: load it (a few times at most)
                    if state["loads"] >= 3:
                        raise reply
                    load()
                send_script(chunk, start, stop)  # again, after the load
                return
            if isinstance(reply, Exception):
                raise reply
            state["written"] += int(reply)
        elif isinstance(reply, Exception):  # SCRIPT LOAD
            raise reply

    def drain(before: int) -> None:
        """Handles the replies of the commands sent before command number ``before``."""
        while stream.expected and stream.expected[0][0] < before:
            expectation, reply = stream.read()
            handle(expectation, reply)
        stream.flush()  # what handling sent (scripts for batches MSETNX refused, reloads)

    start = 0
    if state["msetnx"] and n:  # probe: are the keys new? (an update of existing keys skips MSETNX altogether)
        first = rows.slice(0, min(batch_size, n))
        stream.send((b"*%d\r\n$6\r\nMSETNX\r\n" % (1 + 2 * len(first)), frame_pairs(first).run(0, len(first))),
                    ("probe", None, 0, 0, 0))
        stream.flush()
        _, reply = stream.read()
        if isinstance(reply, NoPermissionError):
            state["refused"], state["msetnx"] = True, False
        elif isinstance(reply, Exception):
            raise reply
        elif int(reply) == 1:
            state["written"], start = len(first), len(first)
        else:
            state["msetnx"] = False
    watch_refused = False
    if not state["msetnx"] and try_watch and n:  # the keys exist: optimistic transactions instead of the script
        written, to_script, start, watch_refused = watched_write(connection, rows, batch_size, start)
        state["written"] += written
        for a, b in to_script:
            send_script(rows, a, b)
        stream.flush()  # (the chunks below flush too, but there may be none: a write's last batches contended)
    step = chunk_rows(batch_size)
    for chunk_start in range(start, n, step):
        chunk = rows.slice(chunk_start, min(n, chunk_start + step))
        first_command = stream.sent
        if state["msetnx"]:
            pairs = frame_pairs(chunk)
            for b in range(0, len(chunk), batch_size):
                send_msetnx(chunk, pairs, b, min(len(chunk), b + batch_size))
        else:
            framed = frame_keys(chunk), frame_values(chunk)
            for b in range(0, len(chunk), batch_size):
                send_script(chunk, b, min(len(chunk), b + batch_size), framed)
        stream.flush()
        drain(first_command)  # replies of earlier chunks (the server is still executing this one)
    while stream.expected:
        drain(stream.sent)
    return state["written"], state["refused"], watch_refused


_BULK_HEADS = [b"$%d" % size for size in range(1024)]  # RESP bulk-string heads of keys up to 1 KiB


def mget(connection: Any, keys: Sequence[bytes]) -> list[bytes | None]:
    """MGET of ``keys``, packed in one join (valkey-py packs each of them in Python)."""
    connection.send_packed_command([_packed_mget(keys)], check_health=False)
    return connection.read_response(disable_decoding=True)


def mget_pieces(connection: Any, pieces: Sequence[Callable[[], Sequence[bytes] | bytes]],
                handle: Callable[[int, list[bytes | None]], Any]) -> list[Any]:
    """One MGET per piece (its keys, or the command already packed: bytes), pipelined: piece ``i + 1``'s keys are
    built while the server looks up piece ``i``, and ``handle(i, values)`` of a piece runs while the server answers the later ones. Returns the handles' results.
    (Any exception leaves replies unread: the caller drops the connection, as :meth:`OnlineStore._on_connection`
    does.)"""
    for piece in pieces:
        keys = piece()
        connection.send_packed_command([keys if isinstance(keys, bytes) else _packed_mget(keys)], check_health=False)
    return [handle(i, connection.read_response(disable_decoding=True)) for i in range(len(pieces))]


def packed_mget_of_texts(prefix: str, texts: Sequence[Sequence[str]], separator: str) -> bytes | None:
    """MGET of the keys ``prefix + separator.join(texts of one entity)`` (``texts``: one list per key column) as
    RESP, packed as one str join and one encode: no bytes object per key (what :meth:`OnlineLayout.keys_for`
    followed by :func:`_packed_mget` makes, ~3x faster for 1,000 keys). None if the text is not all ASCII (a bulk
    length counts bytes: the caller then takes that route)."""
    n = len(texts[0])
    k = len(texts)
    if k == 1:
        lengths = list(map(len, texts[0]))
    else:
        lengths = [sum(sizes) + k - 1 for sizes in zip(*[map(len, column) for column in texts])]
    base = len(prefix)
    heads = {size: f"${base + size}\r\n{prefix}" for size in set(lengths)}
    step = 2 * k + 1  # per key: head (with the prefix), text, [separator, text]..., CRLF
    parts = ["\r\n"] * (step * n)
    parts[0::step] = list(map(heads.__getitem__, lengths))
    for j, column in enumerate(texts):
        parts[1 + 2 * j :: step] = column
        if j:
            parts[2 * j :: step] = [separator] * n
    payload = f"*{n + 1}\r\n$4\r\nMGET\r\n" + "".join(parts)
    return payload.encode() if payload.isascii() else None


def packed_mget_of_ints(prefix: str, values: Sequence[Any]) -> bytes | None:
    """MGET of the keys ``prefix + str(value)`` of int key values, packed by a compiled kernel (no Python text per
    key; byte for byte :func:`packed_mget_of_texts` of their decimal texts). None without the kernels (numba, the
    ``fast`` extra), for a value that is not an ``int`` (bools, strings: the caller's checks name them) or beyond
    int64."""
    module = compiled.kernels()
    if module is None or not values or not set(map(type, values)) <= {int}:
        return None
    try:
        array = np.array(values, dtype=np.int64)
    except OverflowError:
        return None
    head = np.frombuffer(b"*%d\r\n$4\r\nMGET\r\n" % (len(values) + 1), dtype=np.uint8)
    key_prefix = np.frombuffer(prefix.encode(), dtype=np.uint8)
    out = np.empty(len(head) + len(values) * (len(key_prefix) + 48), dtype=np.uint8)
    size = module.pack_int_keys(head, key_prefix, array, out)
    return out[:size].tobytes()


def _packed_mget(keys: Sequence[bytes]) -> bytes:
    n = len(keys)
    parts: list[bytes] = [b""] * (2 * n + 2)
    parts[0] = b"*%d\r\n$4\r\nMGET" % (n + 1)
    parts[2::2] = keys
    try:
        parts[1:-1:2] = [_BULK_HEADS[size] for size in map(len, keys)]
    except IndexError:  # a key longer than the table: its head is made for it
        parts[1:-1:2] = [b"$%d" % size for size in map(len, keys)]
    return b"\r\n".join(parts)
