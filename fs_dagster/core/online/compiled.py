"""Compiled decoding of batches of online values, when numba is installed (the ``fast`` extra; optional).

Column-wise batches (``get_feature_vectors(..., return_type="pandas"|"pyarrow")``) are decoded by numpy
(:mod:`.columns`) at a few numpy calls per column, whose fixed cost dominates a 1,000-entity batch. With numba,
:mod:`.compiled_kernels` walks the MessagePack rows once in machine code instead (the reference benchmark's two
groups of 1,000 values: 0.23 ms instead of 0.62 ms), giving the same arrays, and packs int keys into the MGET
without a Python text per key; the numpy decoder stays the path without numba and for anything the kernels do not
handle.

The kernels are compiled on first use in a process (``numba`` caches the machine code on disk, beside the module
or in its user cache: ~1.8 s the first time on a machine, ~0.5 s later, half of it importing numba). A serving
process calls :func:`prepare` at startup so that no request pays it. ``FS_DAGSTER_COMPILED=0`` turns the kernels
off (numpy decoding only).
"""

from __future__ import annotations

import logging
import os
import threading
from types import ModuleType

import numpy as np

from fs_dagster.core.environment import ENV_COMPILED

log = logging.getLogger(__name__)

_lock = threading.Lock()
_kernels: ModuleType | bool | None = None  # None: not tried yet; False: unavailable


def kernels() -> ModuleType | None:
    """The compiled kernels module, compiling it on the first call; None without numba, when turned off by
    ``FS_DAGSTER_COMPILED=0``, or if compiling failed (logged once)."""
    global _kernels
    if _kernels is None:
        with _lock:
            if _kernels is None:
                _kernels = _load() or False
    return _kernels or None


def prepare() -> bool:
    """Compiles the kernels now (a serving process's startup), so that no request waits for it. Returns whether
    compiled decoding is in use."""
    return kernels() is not None


def reset() -> None:
    """Forgets the kernels (the next :func:`kernels` loads them again, reading ``FS_DAGSTER_COMPILED`` anew)."""
    global _kernels
    with _lock:
        _kernels = None


def _load() -> ModuleType | None:
    if os.environ.get(ENV_COMPILED, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        import numba  # noqa: F401
    except ImportError:
        return None
    try:
        from fs_dagster.core.online import compiled_kernels

        _warm_up(compiled_kernels)
    except Exception as exc:  # a numba that cannot compile here: numpy decoding, said once
        log.warning("fs-dagster: compiled online decoding is off (%s: %s); numpy decoding is used",
                    type(exc).__name__, exc)
        return None
    return compiled_kernels


def _warm_up(module: ModuleType) -> None:
    """Runs each kernel once on a tiny batch (compiles it, or loads numba's cached machine code)."""
    row = b"0" * 37 + b"\x92\x01\xa1x"  # header, [1, "x"]
    buf = np.frombuffer(row, dtype=np.uint8)
    slots, kinds = np.array([0, 1], dtype=np.int64), np.array([module.INT, module.STR], dtype=np.int64)
    ints, bits = np.zeros((2, 1), dtype=np.int64), np.zeros((2, 1), dtype=np.uint64)
    nulls, positions, lengths = np.zeros((2, 1), dtype=np.bool_), np.zeros((2, 1), np.int64), np.zeros((2, 1), np.int64)
    status = module.decode_rows(buf, 1, 37, np.array([0x92], dtype=np.uint8), slots, kinds, ints, bits, nulls,
                                positions, lengths)
    data, offsets = np.empty(len(buf), dtype=np.uint8), np.empty(2, dtype=np.int32)
    module.gather_strings(buf, positions, lengths, np.array([1], dtype=np.int64), offsets, data)
    module.gather_strings(buf, positions, lengths, np.array([1], dtype=np.int64), offsets.astype(np.int64), data)
    if status != module.OK or ints[0, 0] != 1 or bytes(data[: offsets[1]]) != b"x":
        raise RuntimeError(f"the kernels decoded a known row wrongly (status {status})")
    out = np.empty(64, dtype=np.uint8)
    size = module.pack_int_keys(np.frombuffer(b"*2\r\n", dtype=np.uint8), np.frombuffer(b"p:", dtype=np.uint8),
                                np.array([-12], dtype=np.int64), out)
    if bytes(out[:size]) != b"*2\r\n$5\r\np:-12\r\n":
        raise RuntimeError(f"the kernels packed a known key wrongly: {bytes(out[:size])!r}")
