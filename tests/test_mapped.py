"""Memory-mapped trace files (trace/mapped.py), seen from the process's page table
(/proc/self/pagemap): a batch handed out is mapped, and stays mapped while the reader
thread runs ahead; the pages of batches BATCHES_ALIVE behind are dropped, so resident
memory is that of a few batches; a compressed file's mapping is dropped whole."""
import mmap
import os
import time

import numpy as np
import pyarrow as pa
import pytest

from fastnuma.trace import reader
from fastnuma.trace.readahead import BATCHES_ALIVE
from fastnuma.trace.reader import open_trace

PAGE = mmap.PAGESIZE
ROWS = 1 << 16                       # a batch: 512 KiB of addr, 128 pages
BATCHES = 12

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/pagemap"),
                                reason="needs Linux's /proc/self/pagemap")


def _present(start, end):
    """For each page of [start, end) of this process: is it mapped?"""
    first, last = start // PAGE, (end - 1) // PAGE
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(first * 8)
        entries = np.frombuffer(f.read((last - first + 1) * 8), np.uint64)
    return (entries >> np.uint64(63)).astype(bool)


def _mapping_of(path):
    """The address range where ``path`` is mapped in this process."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            if line.rstrip().endswith(str(path)):
                lo, hi = line.split()[0].split("-")
                return int(lo, 16), int(hi, 16)
    raise AssertionError(f"{path} is not mapped")


def _write(path, compression=None):
    n = ROWS * BATCHES
    t = pa.table({"addr": np.arange(n, dtype=np.uint64) << np.uint64(12),
                  "cpu": (np.arange(n) % 4).astype(np.uint16),
                  "op": np.zeros(n, np.uint8), "ts": np.arange(n, dtype=np.uint64)})
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_file(path, t.schema, options=options) as w:
        w.write_table(t, max_chunksize=ROWS)


def _span(a):
    return a.ctypes.data, a.ctypes.data + a.nbytes


@pytest.mark.parametrize("read_ahead", [False, True])
def test_held_batch_mapped_older_ones_dropped(tmp_path, monkeypatch, read_ahead):
    monkeypatch.setattr(reader, "READ_AHEAD_AFTER_ROWS", 1)    # the reader thread from batch 2
    path = tmp_path / "t.arrow"
    _write(path)
    spans = []
    for k, b in enumerate(open_trace(str(path), batch_rows=ROWS, read_ahead=read_ahead)):
        assert b.addr[0] == k * ROWS << 12
        spans.append(_span(b.addr))
        assert _present(*spans[k]).all()        # faulted in before it was handed out
        time.sleep(0.02)                        # the reader runs as far ahead as it may
        assert _present(*spans[k]).all(), f"batch {k}'s pages were dropped while held"
        for j in range(k - BATCHES_ALIVE):      # read() called on them BATCHES_ALIVE ago
            assert not _present(*spans[j]).any(), f"batch {j}'s pages still mapped at {k}"
        lo, hi = _mapping_of(path)
        batch_pages = (os.path.getsize(path) // BATCHES) // PAGE + 1
        assert _present(lo, hi).sum() <= (BATCHES_ALIVE + 2) * batch_pages
    assert len(spans) == BATCHES


def test_compressed_file_mapping_dropped_whole(tmp_path):
    """lz4 batches are decoded into memory of their own: after each batch the mapping
    holds no more than the compressed pages of the one being decoded, and the pages the
    kernel maps around a fault (16: fault-around) at its ends and at the footer."""
    path = tmp_path / "t.arrow"
    _write(path, "lz4")
    seen = 0
    for b in open_trace(str(path), batch_rows=ROWS):
        lo, hi = _mapping_of(path)
        assert not lo <= b.addr.ctypes.data < hi
        batch_pages = (os.path.getsize(path) // BATCHES) // PAGE + 1
        assert _present(lo, hi).sum() <= batch_pages + 3 * 16 < BATCHES * batch_pages // 2
        seen += len(b)
        assert b.addr[-1] == (seen - 1) << 12
    assert seen == ROWS * BATCHES
