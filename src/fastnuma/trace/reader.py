"""Streaming trace reader: Arrow IPC file (memory-mapped), IPC stream, Parquet, a directory
or glob of such files in name order, a pyarrow Table or RecordBatchReader.

``open_trace`` yields :class:`TraceBatch` objects whose columns are numpy views (never a
structured copy). Absent columns come from buffers allocated once per trace and reused, so
a batch is valid until the next one is read. Bad input raises TraceError naming the file,
column, global row and value; a trace is never loaded whole.
"""
import glob
import os
import stat
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..constants import TIME_LIMIT_NS
from ..errors import TraceError
from .checks import first_above, first_decrease
from .mapped import file_batches, prefault, stream_batches
from .readahead import BATCHES_ALIVE, DEFAULT_DEPTH, readahead
from .schema import (COLUMNS, EVENT_LOOP_COLUMNS, MAX_OP, REQUIRED, SUFFIXES,
                     checked_column)

DEFAULT_BATCH_ROWS = 1 << 20


class TruncatedStreamWarning(UserWarning):
    """An IPC stream file ends without its end-of-stream marker: cut at a batch boundary."""


def cut_message(path):
    return (f"{path}: the IPC stream ends without its end-of-stream marker: the file was "
            f"cut after a whole batch (an interrupted writer or copy); the batches before "
            f"the cut were read")


def warn_cut(path):
    warnings.warn(cut_message(path), TruncatedStreamWarning, stacklevel=2)


@dataclass(frozen=True, slots=True)
class TraceBatch:
    """One batch of events: ``row`` is the global index of its first row; the columns are
    numpy arrays of the trace format's types (see schema.COLUMNS)."""
    row: int
    addr: np.ndarray
    cpu: np.ndarray
    op: np.ndarray
    ts: np.ndarray
    tid: np.ndarray
    pid: np.ndarray
    len: np.ndarray
    mode: np.ndarray
    nodemask: np.ndarray
    flags: np.ndarray
    path: str = None          # the file it came from (None for an in-memory source)
    count: np.ndarray = None  # accesses each event stands for (default 1)

    def __len__(self):
        return self.addr.size


def trace_files(path):
    """The files of a trace: one file, or a directory's / glob's trace files by name."""
    path = os.fspath(path)
    if os.path.isdir(path):
        names = sorted(os.path.join(path, n) for n in os.listdir(path))
    elif any(ch in path for ch in "*?["):
        names = sorted(glob.glob(path))
    else:
        if not os.path.exists(path):
            raise TraceError("no such trace file", path=path)
        _regular(path)
        return [path]
    names = [n for n in names if os.path.splitext(n)[1] in SUFFIXES]
    if not names:
        raise TraceError("no trace files (.arrow, .feather, .arrows, .parquet)", path=path)
    for name in names:
        _regular(name)
    return names


def _regular(path):
    """A FIFO, socket or device would block or stream unseekably: only regular files."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise TraceError("not a regular file (a FIFO, socket or device cannot be read as a "
                         "trace: copy it to a file first)", path=path)


def _record_batches(path, batch_rows, on_cut):
    kind = SUFFIXES.get(os.path.splitext(path)[1])
    if kind is None:
        raise TraceError("unknown trace file type (expected .arrow, .feather, .arrows or "
                         ".parquet)", path=path)
    try:
        if kind == "file":
            for batch in file_batches(path):
                yield from _split(batch, batch_rows)
        elif kind == "stream":
            for batch in stream_batches(path, on_cut):
                yield from _split(batch, batch_rows)
        else:
            yield from _parquet_batches(path, batch_rows)
    except (pa.ArrowException, OSError) as e:   # ArrowInvalid, or the "unsupported
        # version" error a corrupt stream header raises: both are a damaged file
        raise TraceError(f"truncated or corrupt trace file: {e}", path=path) from None


PARQUET_READ_BUFFER = 1 << 20


def _parquet_batches(path, batch_rows):
    """A Parquet file's batches, one row group at a time through a small read buffer (no
    pre-buffering of the whole file), the decoded pages given back to the allocator after
    each row group: memory is that of one row group, not of the file."""
    f = pq.ParquetFile(path, buffer_size=PARQUET_READ_BUFFER, pre_buffer=False)
    pool = pa.default_memory_pool()
    for group in range(f.num_row_groups):
        for batch in f.iter_batches(batch_size=batch_rows, row_groups=[group],
                                    use_threads=False):
            yield batch
        pool.release_unused()


def _split(batch, batch_rows):
    for start in range(0, batch.num_rows, batch_rows):
        yield batch.slice(start, batch_rows)


def _sources(source, batch_rows, on_cut):
    """(path or None, record batch) for every batch of the trace, in order."""
    if isinstance(source, pa.Table):
        for batch in source.to_batches(max_chunksize=batch_rows):
            yield None, batch
    elif isinstance(source, pa.RecordBatchReader):
        for batch in source:
            for part in _split(batch, batch_rows):
                yield None, part
    else:
        for path in trace_files(source):
            for batch in _record_batches(path, batch_rows, on_cut):
                yield path, batch


_DEFAULTS = {}


def _default_column(name, n):
    """n rows of column ``name``'s default, read-only (as the columns read from a file),
    from one array per column kept for the process and grown as batches need."""
    arr = _DEFAULTS.get(name)
    if arr is None or arr.size < n:
        dtype, _, default = COLUMNS[name]
        arr = np.full(n, default, dtype)
        arr.setflags(write=False)
        _DEFAULTS[name] = arr
    return arr[:n]


def open_trace(source, batch_rows=DEFAULT_BATCH_ROWS, on_cut=None, read_ahead=False):
    """Iterate over the batches of a trace (path, directory, glob, Table or
    RecordBatchReader), checking it as it goes. See the module docstring.

    ``read_ahead``: read (decompress) and check the next batches on a second thread
    (trace/readahead.py) while the caller works on this one, once READ_AHEAD_AFTER_ROWS
    rows have been read on the caller's thread; a batch stays valid until the caller
    asks for the next, as without. Close the iterator when leaving early
    (``contextlib.closing``).

    ``on_cut(path)``: called when an IPC stream file ends without its end-of-stream
    marker (cut at a batch boundary: the batches read are whole, the rest is missing);
    default: a :class:`TruncatedStreamWarning`. Every ``ts`` must be below
    ``TIME_LIMIT_NS`` (2**62 ns, fastnuma's time domain), checked once per batch."""
    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a positive int, not {batch_rows!r}")
    if on_cut is None:
        on_cut = warn_cut
    if not read_ahead:
        yield from _checked(_sources(source, batch_rows, on_cut))
        return
    sources = _Peekable(_sources(source, batch_rows, on_cut))
    checked = _checked(sources, BATCHES_ALIVE)
    try:
        rows = 0
        for batch in checked:
            rows += len(batch)
            if rows >= READ_AHEAD_AFTER_ROWS and sources.has_more():
                break
            yield batch
        else:
            return
        batches = readahead(checked, depth=DEFAULT_DEPTH)   # from the next batch on, read
        try:                                                # while this one replays
            yield batch
            yield from batches
        finally:
            batches.close()
    finally:
        checked.close()
        sources.close()


#: rows read on the caller's thread before the reader thread starts, if more follow: a
#: thread costs 0.2-0.7 ms of a replay (its start, its end, the two threads' turns at
#: the GIL), about what checking 250 thousand rows of an uncompressed file costs; a
#: trace that small (a converted lackey trace of git: 277 thousand rows, 2.8-3.3 ms with
#: the thread, 2.4-2.7 without) replays faster without one, and a longer one (sort's:
#: 1.4 million rows) faster with (2026-12-07)
READ_AHEAD_AFTER_ROWS = 1 << 18
_NOTHING = object()


class _Peekable:
    """An iterator that tells whether it has another item (by reading it ahead). An
    error met reading ahead is raised in its turn, by the ``next()`` that asks for that
    item: the batches before it still replay (docs/api.md, streaming semantics)."""

    def __init__(self, items):
        self._items, self._next, self._error = items, _NOTHING, None

    def __iter__(self):
        return self

    def __next__(self):
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._next is _NOTHING:
            return next(self._items)
        item, self._next = self._next, _NOTHING
        return item

    def has_more(self):
        if self._next is _NOTHING and self._error is None:
            try:
                self._next = next(self._items)
            except StopIteration:
                return False
            except Exception as e:       # a damaged batch, a cut stream under strict
                self._error = e
        return True

    def close(self):
        self._next, self._error = _NOTHING, None
        self._items.close()


def _checked(sources, buffers=1):
    """open_trace's batches: ``sources``' (path, record batch) checked as TraceBatch. The
    derived columns (ts and tid when absent) are written to ``buffers`` sets of buffers
    used in turn: a batch stays valid while ``buffers - 1`` later ones are made."""
    # buffers of the derived columns, sized by the largest batch seen (not batch_rows: a
    # small trace would pay for 1M-row buffers, ~40 ms per replay)
    empty = np.empty(0, np.uint64)
    rows, ts_bufs, tid_bufs = empty, [empty] * buffers, [empty] * buffers
    row0, last_ts, checked = 0, 0, set()
    for k, (path, batch) in enumerate(sources):
        ts_buf, tid_buf = ts_bufs[k % buffers], tid_bufs[k % buffers]
        names = set(batch.schema.names)
        if path not in checked:
            for name in REQUIRED:
                if name not in names:
                    raise TraceError("missing required column", path=path, column=name)
            checked.add(path)
        n = batch.num_rows
        if "ts" not in names:
            if n > rows.size:
                rows = np.arange(n, dtype=np.uint64)
            if n > ts_buf.size:
                ts_buf = ts_bufs[k % buffers] = np.empty(n, np.uint64)
        if n > tid_buf.size and "tid" not in names:
            tid_buf = tid_bufs[k % buffers] = np.empty(n, np.uint32)
        cols = {}
        for name, (dtype, _, default) in COLUMNS.items():
            if name in names:
                cols[name] = checked_column(name, batch.column(name), path, row0)
            elif default is not None:
                cols[name] = _default_column(name, n)
        prefault(batch, EVENT_LOOP_COLUMNS)             # checked: integer columns
        if "ts" not in cols:
            cols["ts"] = np.add(rows[:n], np.uint64(row0), out=ts_buf[:n])
        if "tid" not in cols:                          # tid defaults to cpu
            cols["tid"] = tid_buf[:n]
            np.copyto(cols["tid"], cols["cpu"])
        ts = cols["ts"]
        if n:
            k = first_decrease(ts, np.uint64(last_ts))
            if k >= 0:
                raise TraceError("ts goes backwards", path=path, column="ts", row=row0 + k,
                                 value=int(ts[k]))
            k = first_above(cols["op"], np.uint8(MAX_OP))
            if k >= 0:
                raise TraceError(f"unknown op (version 1 defines 0..{MAX_OP})", path=path,
                                 column="op", row=row0 + k, value=int(cols["op"][k]))
            last_ts = int(ts[-1])
            if last_ts >= TIME_LIMIT_NS:             # sorted: the last is the largest
                k = int(np.searchsorted(ts, np.uint64(TIME_LIMIT_NS)))
                raise TraceError("ts outside fastnuma's time domain (0 <= ts < 2**62 ns)",
                                 path=path, column="ts", row=row0 + k, value=int(ts[k]))
        yield TraceBatch(row=row0, path=path, **cols)
        row0 += n
