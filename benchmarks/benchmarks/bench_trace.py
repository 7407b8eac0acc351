"""Trace reading: ``fastnuma.trace.reader.open_trace`` over one generated trace stored as
an Arrow IPC file (memory-mapped), an IPC stream and a Parquet file.

The trace is written once by ``setup_cache`` with pyarrow directly (not fastnuma's writer,
so a writer change cannot move these figures) into ``$FASTNUMA_ASV_CACHE/traces`` and
reused by later runs (files are renamed into place whole, so one that exists is complete).
Reads come from the page cache: the figures are the reader's decoding and checking
(zero-copy views, the ts / op checks, the default columns), not the disk.
"""
import os
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .common import CACHE_ROOT, PAGE_SHIFT, SEED, sizes

from fastnuma.trace.reader import DEFAULT_BATCH_ROWS, open_trace

#: Rows of the trace (10M; QUICK 100K).
TRACE_ROWS = sizes([10_000_000], [100_000])[0]
#: Rows of the small copy each format's ``setup`` reads first (JIT and import warm-up).
WARM_ROWS = 1000
#: Rows per record batch (IPC) and per row group (Parquet): the reader's default batch.
CHUNK_ROWS = DEFAULT_BATCH_ROWS
#: Parquet compression: fastnuma's writer default (trace/writer.py).
PARQUET_COMPRESSION = "zstd"
FORMATS = {"ipc_file": ".arrow", "ipc_stream": ".arrows", "parquet": ".parquet"}
TRACE_VERSION = 1             # of this generator: bump when the rows below change
TRACE_PAGES = 1 << 20         # 4 GiB working set
TRACE_CPUS = 16
BASE_ADDR = 0x600000000000


def _batch(start, stop):
    """Rows [start, stop) of the trace: the columns a recorded trace carries (addr,
    cpu, op, ts, tid), seeded per chunk so any chunk can be made alone. Uniform random
    pages with an 8-byte aligned offset, 20% writes, ts in ns (one event per 10 ns),
    tid = cpu (one thread per CPU)."""
    rng = np.random.default_rng([SEED, TRACE_VERSION, start])
    n = stop - start
    pages = rng.integers(0, TRACE_PAGES, n, dtype=np.uint64)
    offsets = rng.integers(0, 512, n, dtype=np.uint64) << np.uint64(3)
    cpu = rng.integers(0, TRACE_CPUS, n, dtype=np.uint16)
    return pa.record_batch({
        "addr": np.uint64(BASE_ADDR) + (pages << np.uint64(PAGE_SHIFT)) + offsets,
        "cpu": cpu,
        "op": (rng.random(n, dtype=np.float32) < 0.2).astype(np.uint8),
        "ts": np.arange(start, stop, dtype=np.uint64) * np.uint64(10),
        "tid": cpu.astype(np.uint32),
    })


def _write(path, fmt, rows):
    """The trace of ``rows`` rows in format ``fmt`` at ``path``, written to a temporary
    file in the same folder and renamed into place."""
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=os.path.dirname(path))
    os.close(fd)
    try:
        schema = _batch(0, 1).schema
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, schema, compression=PARQUET_COMPRESSION) as w:
                for s in range(0, rows, CHUNK_ROWS):
                    w.write_batch(_batch(s, min(rows, s + CHUNK_ROWS)),
                                  row_group_size=CHUNK_ROWS)
        else:
            opener = ipc.new_file if fmt == "ipc_file" else ipc.new_stream
            with pa.OSFile(tmp, "wb") as sink, opener(sink, schema) as w:
                for s in range(0, rows, CHUNK_ROWS):
                    w.write_batch(_batch(s, min(rows, s + CHUNK_ROWS)))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def trace_path(fmt, rows):
    return CACHE_ROOT / "traces" / f"bench-v{TRACE_VERSION}-{rows}-{SEED}{FORMATS[fmt]}"


def warm_checks():
    """Load and compile the column checks (fastnuma/trace/_jit_checks.py) outside the
    timing: open_trace imports them lazily at its first large batch. Both writable and
    read-only arrays (zero-copy IPC columns are read-only: another Numba signature)."""
    from fastnuma.trace import _jit_checks
    for writable in (True, False):
        ts, op = np.zeros(2, np.uint64), np.zeros(2, np.uint8)
        ts.setflags(write=writable)
        op.setflags(write=writable)
        _jit_checks.first_decrease(ts, np.uint64(0))
        _jit_checks.first_above(op, np.uint8(0))


def drain(path):
    """Read the whole trace through open_trace; returns the number of rows."""
    rows = 0
    for batch in open_trace(path):
        rows += len(batch)
    return rows


class ReadTrace:
    """``open_trace`` over the whole trace of :data:`TRACE_ROWS` rows (5 columns, 23 bytes
    a row uncompressed): ``ipc_file`` (.arrow, memory-mapped, zero-copy columns),
    ``ipc_stream`` (.arrows) and ``parquet`` (zstd, decoded batch by batch).
    ``time_read`` drains it once; ``track_rows_per_s`` is the median of 3 reads and checks
    the row count; ``track_file_bytes`` is the file's size."""
    params = list(FORMATS)
    param_names = ["format"]
    timeout = 900

    def setup_cache(self):
        paths = {}
        for rows in (TRACE_ROWS, WARM_ROWS):
            for fmt in FORMATS:
                path = trace_path(fmt, rows)
                if not path.is_file():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _write(str(path), fmt, rows)
                paths[fmt, rows] = str(path)
        return paths

    def setup(self, paths, fmt):
        self.path = paths[fmt, TRACE_ROWS]
        drain(paths[fmt, WARM_ROWS])        # the reader's imports, for this format's arrays
        warm_checks()

    def time_read(self, paths, fmt):
        drain(self.path)

    def track_rows_per_s(self, paths, fmt):
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            rows = drain(self.path)
            rates.append(rows / (time.perf_counter() - t0))
            if rows != TRACE_ROWS:
                raise RuntimeError(f"{self.path}: read {rows} rows, expected {TRACE_ROWS}")
        return float(np.median(rates))
    track_rows_per_s.unit = "rows/s"

    def track_file_bytes(self, paths, fmt):
        return os.path.getsize(self.path)
    track_file_bytes.unit = "bytes"
