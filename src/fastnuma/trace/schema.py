"""Trace format v1: the columns, their types, defaults and the allowed integer casts.

One table, the single source of truth for readers and writers (as fastparquet keeps one).
"""
import numpy as np
import pyarrow as pa

from ..errors import TraceError

from ..constants import OP_MADVISE

# column -> (numpy dtype, required, default); default None = derived (ts: row, tid: cpu)
COLUMNS = {
    "addr": (np.uint64, True, None),
    "cpu": (np.uint16, True, None),
    "op": (np.uint8, False, 0),
    "ts": (np.uint64, False, None),
    "tid": (np.uint32, False, None),
    "pid": (np.uint32, False, 0),
    "len": (np.uint64, False, 0),
    "mode": (np.uint16, False, 0),
    "nodemask": (np.uint64, False, 0),
    "flags": (np.uint32, False, 0),
    # accesses this event stands for (perf mem's sample period); the cost model weighs
    # by it (docs/trace-format.md). 0 is allowed: an event that stands for nothing.
    "count": (np.uint32, False, 1),
}
REQUIRED = tuple(c for c, (_, req, _) in COLUMNS.items() if req)
#: the columns every event's replay reads (the others only a control event's)
EVENT_LOOP_COLUMNS = ("addr", "cpu", "op", "ts", "tid", "pid")
MAX_OP = OP_MADVISE                         # ops 0..8 are defined by version 1
VERSION = 1
# file suffix -> container: Arrow IPC file, IPC stream, Parquet
SUFFIXES = {".arrow": "file", ".feather": "file", ".arrows": "stream", ".parquet": "parquet"}


def _arrow_integers(values):
    """An Arrow integer array or chunked array without nulls as numpy: a read-only view of
    its buffer (one chunk), else a copy. Not ``to_numpy``: pyarrow imports pandas there,
    2 s of a new process's first replay (measured on the loaded dev VM)."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    dtype = np.dtype(str(values.type))
    parts = [np.frombuffer(c.buffers()[1], dtype, len(c), c.offset * dtype.itemsize)
             if len(c) else np.zeros(0, dtype) for c in chunks]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def checked_column(name, values, path, row0):
    """``values`` (an Arrow or numpy integer array) as column ``name``'s v1 type; another
    width or signedness is cast when every value fits, else TraceError naming the file,
    column, row (``row0`` + index) and value."""
    dtype = np.dtype(COLUMNS[name][0])
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if not pa.types.is_integer(values.type):
            raise TraceError(f"column {name!r} must be an integer column, not {values.type}",
                             path=path, column=name)
        if values.null_count:
            bad = int(np.flatnonzero(np.asarray(values.is_null()))[0])
            raise TraceError("null value", path=path, column=name, row=row0 + bad, value=None)
        values = _arrow_integers(values)
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-D, got shape {values.shape}")
    if values.dtype == dtype:
        return values
    if values.dtype.kind not in "iub" and values.size:
        raise TraceError(f"column {name!r} must hold integers, not {values.dtype}",
                         path=path, column=name)
    if values.dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        bad = values > info.max
        if values.dtype.kind == "i":
            bad |= values < 0
        k = np.flatnonzero(bad)
        if k.size:
            k = int(k[0])
            raise TraceError(f"value does not fit the column's type {dtype.name}", path=path,
                             column=name, row=row0 + k, value=int(values[k]))
    return values.astype(dtype)
