"""Issue 18's faults, one regression test each: the time domain, MOVE_PAGES rows, a stream
cut at a batch boundary, failed replays (streaming semantics), FIFOs, absurd lengths."""
import errno
import os
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

import fastnuma as fn
from fastnuma.dtypes import VMSTAT_NAMES
from fastnuma.constants import TIME_LIMIT_NS
from fastnuma.errors import TraceError
from fastnuma.trace.reader import TruncatedStreamWarning, open_trace
from tests.test_replay import BASE, MAPF, table, topo


def _sim():
    return fn.Simulator(topo())


def _accesses(ts):
    return table([dict(op=fn.OP_WRITE, addr=BASE + k * 4096, ts=t, tid=1, pid=1)
                  for k, t in enumerate(ts)])


# ------------------------------------------------------------------ 1. time domain
@pytest.mark.parametrize("ts", [[0, 1 << 63], [1 << 63, (1 << 63) + 5], [5, 1 << 62],
                                [0, (1 << 64) - 1]])
def test_ts_outside_the_time_domain_is_a_trace_error(ts):
    sim = _sim()
    with pytest.raises(TraceError) as e:
        sim.replay(_accesses(ts))
    assert e.value.column == "ts" and e.value.row == 1 - (ts[0] >= TIME_LIMIT_NS)
    assert "2**62" in str(e.value)


def test_a_jump_that_would_pass_the_domain_from_now_is_caught():
    """ts itself below 2**62, but now_ns + (ts - first ts) is not: the replay stops before
    batch (the check runs once per batch) instead of running with a negative clock."""
    sim = _sim()
    sim.advance(1 << 61)
    with pytest.raises(TraceError) as e:
        sim.replay(_accesses([0, 10, (1 << 61) + 10]))
    assert (e.value.row, e.value.column) == (2, "ts")
    assert e.value.rows_replayed == 0 and sim.now_ns == 1 << 61
    sim = _sim()
    sim.advance(1 << 61)
    with pytest.raises(TraceError) as e:              # batches of 2: the first one runs
        sim.replay(_accesses([0, 10, (1 << 61) + 10]), batch_rows=2)
    assert e.value.row == 2 and e.value.rows_replayed == 2
    assert sim.now_ns == (1 << 61) + 10


def test_the_last_time_of_the_domain_replays():
    sim = _sim()
    report = sim.replay(_accesses([0, TIME_LIMIT_NS - 1]))
    assert report.rows == 2 and sim.now_ns == TIME_LIMIT_NS - 1 and report.now_ns > 0


@pytest.mark.parametrize("ns", [TIME_LIMIT_NS, (1 << 63) - 1, 1 << 63, 1 << 70])
def test_advance_past_the_time_domain_is_a_value_error_state_unchanged(ns):
    sim = _sim()
    pid = sim.spawn(cpu=0)
    with pytest.raises(ValueError, match="2\\*\\*62"):
        sim.advance(ns)
    assert sim.now_ns == 0
    a = sim.mmap(pid, 1 << 20)
    sim.access(sim.tids(pid)[0], np.array([a]), True)
    assert sim.vmstat()["numa_hit"] == 1


def test_advance_to_the_last_ns_then_access():
    sim = _sim()
    pid = sim.spawn(cpu=0)
    sim.advance(TIME_LIMIT_NS - 1)
    a = sim.mmap(pid, 1 << 20)
    sim.access(sim.tids(pid)[0], np.array([a, a + 4096]), True)
    assert sim.vmstat()["numa_hit"] == 2 and sim.now_ns == TIME_LIMIT_NS - 1


@pytest.mark.parametrize("kw", [dict(epoch_events=True), dict(epoch_ns=1 << 62),
                                dict(epoch_ns=10 ** 30), dict(epoch_events=0)])
def test_bad_epochs_are_value_errors(kw):
    with pytest.raises(ValueError, match="epoch"):
        _sim().replay(_accesses([0, 1]), **kw)


# ------------------------------------------------------------------ 3. MOVE_PAGES rows
def _move_rows(addr, length):
    return table([dict(op=fn.OP_MMAP, addr=BASE, len=64 * 4096, flags=MAPF, tid=1, pid=1),
                  *[dict(op=fn.OP_WRITE, addr=BASE + p * 4096, tid=1, pid=1)
                    for p in range(64)],
                  dict(op=fn.OP_MOVE_PAGES, addr=addr, len=length, nodemask=1 << 3, tid=1,
                       pid=1)])


def test_move_pages_range_wrapping_past_2_64_is_einval_nothing_moved():
    sim = _sim()
    report = sim.replay(_move_rows((1 << 64) - 4096, 2 * 4096))
    assert [(c[1], c[4]) for c in report.failed_calls] == [("MOVE_PAGES", errno.EINVAL)]
    assert report.vmstat["pgmigrate_success"] == 0
    assert sim.page_nodes(1, BASE, 64 * 4096).tolist() == [0] * 64


def test_move_pages_range_beyond_task_size_is_efault():
    sim = _sim()
    report = sim.replay(_move_rows(BASE, 1 << 50))
    assert [(c[1], c[4]) for c in report.failed_calls] == [("MOVE_PAGES", errno.EFAULT)]
    assert report.vmstat["pgmigrate_success"] == 0


def test_move_pages_huge_len_costs_what_is_mapped():
    """len 2**46 from BASE - 2**45: 2**34 pages in the range (128 GiB of status before the
    fix); only the 64 mapped pages are listed, and moved."""
    sim = _sim()
    report = sim.replay(_move_rows(BASE - (1 << 45), 1 << 45 | 64 * 4096))
    assert report.failed_calls == []
    assert report.vmstat["pgmigrate_success"] == 64
    assert sim.page_nodes(1, BASE, 64 * 4096).tolist() == [3] * 64


@pytest.mark.parametrize("first,n", [(0, 1), (10, 5), (60, 20), (-3, 5), (70, 4)])
def test_move_pages_row_equals_move_pages_call(first, n):
    """A MOVE_PAGES row does what move_pages(2) on each page of its range does."""
    sim, ref = _sim(), _sim()
    r = sim.replay(_move_rows(BASE + first * 4096 + 100, n * 4096 - 100))
    ref.replay(_move_rows(BASE, 0).slice(0, 65))
    pages = BASE + np.arange(first, first + n, dtype=np.int64) * 4096
    ref.move_pages(1, pages, np.full(n, 3))
    assert r.failed_calls == []
    assert sim.vmstat() == ref.vmstat()
    assert sim.page_nodes(1, BASE, 64 * 4096).tolist() == \
        ref.page_nodes(1, BASE, 64 * 4096).tolist()


# ------------------------------------------------------------------ 5. cut streams
def _stream(path, batches=4, rows=3):
    t = _accesses(list(range(batches * rows)))
    with ipc.new_stream(path, t.schema) as w:
        for b in t.to_batches(max_chunksize=rows):
            w.write_batch(b)
    return t


def _cut_after(path, out, n_batches):
    """Copy the stream ``path`` to ``out`` cut right after its n-th batch."""
    with open(path, "rb") as f:
        data = f.read()
    src = pa.BufferReader(pa.py_buffer(data))
    reader = ipc.open_stream(src)
    for _ in range(n_batches):
        reader.read_next_batch()
    with open(out, "wb") as f:
        f.write(data[:src.tell()])


def test_whole_stream_gives_no_warning(tmp_path):
    _stream(tmp_path / "t.arrows")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _sim().replay(str(tmp_path / "t.arrows")).rows == 12


@pytest.mark.parametrize("keep", [1, 2, 4])
def test_stream_cut_at_a_batch_boundary_warns_or_fails_strict(tmp_path, keep):
    _stream(tmp_path / "t.arrows")
    cut = str(tmp_path / "cut.arrows")
    _cut_after(tmp_path / "t.arrows", cut, keep)
    with pytest.warns(TruncatedStreamWarning, match="end-of-stream marker"):
        assert _sim().replay(cut).rows == 3 * keep
    sim = _sim()
    with pytest.raises(TraceError, match="end-of-stream marker") as e:
        sim.replay(cut, strict=True)
    assert e.value.path == cut and e.value.rows_replayed == 3 * keep


def test_info_says_a_stream_is_cut(tmp_path):
    from fastnuma.trace.info import trace_info
    _stream(tmp_path / "t.arrows")
    assert "end of stream" not in str(trace_info(str(tmp_path / "t.arrows")))
    cut = str(tmp_path / "cut.arrows")
    _cut_after(tmp_path / "t.arrows", cut, 2)
    text = str(trace_info(cut))
    assert "rows:           6" in text and "end-of-stream marker" in text


def test_open_trace_on_cut_hook(tmp_path):
    _stream(tmp_path / "t.arrows")
    cut = str(tmp_path / "cut.arrows")
    _cut_after(tmp_path / "t.arrows", cut, 3)
    seen = []
    assert sum(len(b) for b in open_trace(cut, on_cut=seen.append)) == 9
    assert seen == [cut]


# ------------------------------------------------------------------ 6. failed replays
def test_failed_replay_says_how_many_rows_are_applied():
    """Streaming semantics (docs/api.md): the rows before the bad one are applied."""
    ev = [dict(op=fn.OP_WRITE, addr=BASE + p * 4096, tid=1, pid=1) for p in range(10)]
    ev[7]["cpu"] = 999
    sim = _sim()
    with pytest.raises(TraceError) as e:
        sim.replay(table(ev), batch_rows=4)
    assert e.value.row == 7 and e.value.rows_replayed == 7
    assert sim.vmstat()["numa_hit"] == 7


# ------------------------------------------------------------------ 7. non-regular files
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("name", ["t.arrow", "t.arrows", "t.parquet"])
def test_fifo_is_rejected_without_blocking(tmp_path, name):
    path = str(tmp_path / name)
    os.mkfifo(path)
    with pytest.raises(TraceError, match="not a regular file"):
        _sim().replay(path)
    os.mkfifo(str(tmp_path / "d.arrow"))
    with pytest.raises(TraceError, match="not a regular file"):
        _sim().replay(str(tmp_path))


# ------------------------------------------------------------------ 7. absurd lengths
@pytest.mark.parametrize("call", ["page_nodes", "page_flags", "change_prot_numa"])
@pytest.mark.parametrize("length", [(1 << 64) + 4096, 1 << 70, -(1 << 64)])
def test_lengths_that_are_no_unsigned_long_are_einval(call, length):
    sim = _sim()
    pid = sim.spawn(cpu=0)
    a = sim.mmap(pid, 1 << 20)
    with pytest.raises(OSError) as e:
        getattr(sim, call)(pid, a, length)
    assert e.value.errno == errno.EINVAL


@pytest.mark.parametrize("call", ["page_nodes", "page_flags"])
def test_a_query_of_the_whole_address_space_is_einval_not_a_memory_error(call):
    sim = _sim()
    pid = sim.spawn(cpu=0)
    with pytest.raises(OSError) as e:
        getattr(sim, call)(pid, 0, 1 << 47)
    assert e.value.errno == errno.EINVAL and "pages in one query" in str(e.value)
    assert getattr(sim, call)(pid, 0, 1 << 20).size == 256


# ------------------------------------------------------------------ 7. epochs in arrays
def test_one_epoch_per_event_is_stored_in_arrays():
    import tracemalloc
    n = 20000
    t = table([dict(op=fn.OP_WRITE, addr=BASE + (k % 512) * 4096, tid=1, pid=1)
               for k in range(n)])
    sim = _sim()
    sim.replay(t.slice(0, 10), epoch_events=1)       # compiled, warm
    tracemalloc.start()
    r = _sim().replay(t, epoch_events=1)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(r.epochs) == n
    # int64 arrays per epoch: 8 columns, pages on 4 nodes, the 4x4 access matrix and the
    # vmstat deltas (the cost model's input); at most twice that while the arrays double.
    # A tuple and arrays per epoch took ~900 bytes plus ~700 for the matrix and deltas.
    per_epoch = 8 * (8 + 4 + 16 + len(VMSTAT_NAMES))
    assert size < 2 * per_epoch * n + (1 << 20)
    row = r.to_tables()["epochs"].slice(n - 1).to_pylist()[0]
    last = r.epochs[-1]
    assert last[:8] == tuple(row[c] for c in ("end_row", "end_ns", "accesses", "remote",
                                               "remote_fraction", "numa_hint_faults",
                                               "numa_pages_migrated", "pgmigrate_success"))
    assert last[8].tolist() == [row[f"pages_node{k}"] for k in range(4)]
    assert [e[0] for e in r.epochs][:3] == [1, 2, 3]


def test_trace_error_is_one_line():
    """A library message over several lines (pyarrow's, for some corrupt Parquet files)
    becomes one line, so the CLI prints a one-line error."""
    from fastnuma.errors import TraceError
    e = TraceError("truncated or corrupt trace file: Couldn't deserialize thrift:\n"
                   "  TProtocolException: Invalid data\n", path="x.parquet")
    assert str(e) == ("truncated or corrupt trace file: Couldn't deserialize thrift:; "
                      "TProtocolException: Invalid data (file 'x.parquet')")
