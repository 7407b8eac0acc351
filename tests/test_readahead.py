"""Readahead (trace/readahead.py): items in order, an error raised where it was met, the
reader stopped and its source closed when the consumer leaves early; a replay's error in
a later batch still leaves the rows before it applied, and no reader thread behind."""
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import fastnuma as fn
from fastnuma.errors import TraceError
from fastnuma.trace import reader
from fastnuma.trace.readahead import readahead
from fastnuma.trace.reader import open_trace


def _readers():
    return [t for t in threading.enumerate() if t.name == "fastnuma-readahead"]


def test_items_in_order_and_error_in_place():
    def source():
        yield from range(5)
        raise ValueError("bad item 5")

    got = []
    with readahead(source(), depth=2) as it:
        with pytest.raises(ValueError, match="bad item 5"):
            for x in it:
                got.append(x)
    assert got == [0, 1, 2, 3, 4]
    assert not _readers()


def test_close_stops_the_reader_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = readahead(source(), depth=2)
    assert [next(it), next(it), next(it)] == [0, 1, 2]
    it.close()
    assert closed.is_set()
    assert not _readers()
    with pytest.raises(StopIteration):
        next(it)


def test_replay_error_in_a_later_batch(tmp_path, monkeypatch):
    """A bad op in the third batch: the two batches before it replayed, the error names
    its row, and the reader is gone."""
    monkeypatch.setattr(reader, "READ_AHEAD_AFTER_ROWS", 1)     # a reader from the first batch on
    n = 3000
    addr = 0x7f0000000000 + (np.arange(n, dtype=np.uint64) % 64) * 4096
    op = np.zeros(n, np.uint8)
    op[2500] = 200                                      # no such op
    t = pa.table({"addr": addr, "cpu": np.zeros(n, np.uint16), "op": op,
                  "ts": np.arange(n, dtype=np.uint64)})
    path = tmp_path / "t.arrow"
    with pa.ipc.new_file(path, t.schema) as w:
        w.write_table(t, max_chunksize=1000)
    sim = fn.Simulator(fn.Topology.uniform(nodes=2, cpus_per_node=1, pages_per_node=256))
    with pytest.raises(TraceError, match="row 2500") as e:
        sim.replay(str(path), batch_rows=1000)
    assert e.value.rows_replayed == 2000
    assert not _readers()


def test_derived_columns_stay_valid_while_the_reader_runs_ahead(tmp_path, monkeypatch):
    """Without ts and tid columns the reader thread writes both (ts = row, tid = cpu) into
    buffers of its own: the batch the caller holds keeps its values while the reader
    fills the next ones."""
    monkeypatch.setattr(reader, "READ_AHEAD_AFTER_ROWS", 1000)   # the reader from batch 2 on
    n, rows = 6000, 500
    cpu = (np.arange(n) % 3).astype(np.uint16)
    t = pa.table({"addr": np.arange(n, dtype=np.uint64) << np.uint64(12), "cpu": cpu,
                  "op": np.zeros(n, np.uint8)})
    path = tmp_path / "t.arrow"
    with pa.ipc.new_file(path, t.schema) as w:
        w.write_table(t, max_chunksize=rows)
    seen = 0
    for b in open_trace(str(path), batch_rows=rows, read_ahead=True):
        time.sleep(0.01)             # time for the reader to fill the queue and one more
        assert np.array_equal(b.ts, np.arange(b.row, b.row + len(b), dtype=np.uint64))
        assert np.array_equal(b.tid, cpu[b.row:b.row + len(b)])
        seen += len(b)
    assert seen == n
    assert not _readers()


def _reads(n):
    """n reads by CPU 0 over 64 pages, as a bare access trace."""
    return pa.table({"addr": 0x7f0000000000 + (np.arange(n, dtype=np.uint64) % 64) * 4096,
                     "cpu": np.zeros(n, np.uint16), "op": np.zeros(n, np.uint8)})


def _write(path, n, rows):
    t = _reads(n)
    with pa.ipc.new_file(path, t.schema) as w:
        w.write_table(t, max_chunksize=rows)


@pytest.mark.parametrize("after", [1 << 40, 3000, 1000])
def test_reader_thread_only_after_the_first_rows(tmp_path, monkeypatch, after):
    """The first READ_AHEAD_AFTER_ROWS rows are read on the caller's thread (a thread
    costs a small trace more than it saves): a trace that small never starts one, nor
    one that ends there; a longer one starts it once that many rows are read. The replay
    is the same."""
    monkeypatch.setattr(reader, "READ_AHEAD_AFTER_ROWS", after)
    path = tmp_path / "t.arrow"
    _write(path, 3000, 500)
    readers = []
    sim = fn.Simulator(fn.Topology.uniform(nodes=2, cpus_per_node=1, pages_per_node=256))
    report = sim.replay(str(path), batch_rows=500,
                        on_batch=lambda b, ends: readers.append(len(_readers())))
    if after >= 3000:
        assert readers == [0] * 6
    else:     # started with batch 2 (1000 rows read), busy (the queue full) for two more
        assert readers[:4] == [0, 1, 1, 1]
    assert report.rows == 3000
    assert report.access_matrix.sum() == 3000 and report.vmstat["pgfault"] == 64
    assert not _readers()


@pytest.mark.parametrize("keep", [2, 3])
def test_an_error_met_looking_ahead_is_raised_in_its_turn(tmp_path, monkeypatch, keep):
    """Whether more batches follow is found by reading the next one ahead: an error met
    there (a stream cut after ``keep`` whole batches, under strict) is raised after the
    batches before it have replayed, as without the look."""
    from pyarrow import ipc
    monkeypatch.setattr(reader, "READ_AHEAD_AFTER_ROWS", 500 * keep)   # looks at the cut
    rows = 500
    t = _reads(4 * rows)
    with ipc.new_stream(tmp_path / "t.arrows", t.schema) as w:
        for b in t.to_batches(max_chunksize=rows):
            w.write_batch(b)
    data = (tmp_path / "t.arrows").read_bytes()
    src = pa.BufferReader(pa.py_buffer(data))
    stream = ipc.open_stream(src)
    for _ in range(keep):
        stream.read_next_batch()
    cut = tmp_path / "cut.arrows"
    cut.write_bytes(data[:src.tell()])                   # no end-of-stream marker
    sim = fn.Simulator(fn.Topology.uniform(nodes=2, cpus_per_node=1, pages_per_node=256))
    with pytest.raises(TraceError, match="end-of-stream marker") as e:
        sim.replay(str(cut), batch_rows=rows, strict=True)
    assert e.value.rows_replayed == rows * keep
    assert not _readers()
