"""Trace reader: every container gives the same columns at any batch size; bad input
names the file, column, row and value."""
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from fastnuma import TraceError
from fastnuma.trace import open_trace

N = 1000


def table(**overrides):
    rng = np.random.default_rng(3)
    cols = {
        "addr": pa.array(rng.integers(0, 1 << 40, N, dtype=np.uint64)),
        "cpu": pa.array(rng.integers(0, 16, N).astype(np.uint16)),
        "op": pa.array(rng.integers(0, 2, N).astype(np.uint8)),
        "ts": pa.array(np.arange(N, dtype=np.uint64) * 10),
        "pid": pa.array(np.full(N, 7, np.uint32)),
    }
    cols.update(overrides)
    return pa.table({k: v for k, v in cols.items() if v is not None})


def write_all(tmp_path, t):
    """The same table as IPC file, IPC stream, Parquet and a split directory."""
    paths = {}
    paths["file"] = tmp_path / "t.arrow"
    with ipc.new_file(paths["file"], t.schema) as w:
        w.write_table(t, max_chunksize=300)
    paths["stream"] = tmp_path / "t.arrows"
    with ipc.new_stream(paths["stream"], t.schema) as w:
        w.write_table(t, max_chunksize=333)
    paths["parquet"] = tmp_path / "t.parquet"
    pq.write_table(t, paths["parquet"], row_group_size=250)
    d = tmp_path / "split"
    d.mkdir()
    for k, start in enumerate(range(0, N, 400)):
        pq.write_table(t.slice(start, 400), d / f"part-{k:03d}.parquet")
    paths["dir"] = d
    return paths


def collect(source, batch_rows):
    cols = {}
    for b in open_trace(source, batch_rows=batch_rows):
        for name in ("addr", "cpu", "op", "ts", "tid", "pid", "len", "mode", "nodemask",
                     "flags"):
            cols.setdefault(name, []).append(getattr(b, name).copy())
    return {k: np.concatenate(v) for k, v in cols.items()}


@pytest.mark.parametrize("batch_rows", [1, 7, 1 << 20])
def test_every_container_and_batch_size_gives_the_same_columns(tmp_path, batch_rows):
    t = table()
    expect = collect(t, 1 << 20)
    assert (expect["tid"] == expect["cpu"]).all() and (expect["len"] == 0).all()
    assert (expect["pid"] == 7).all() and expect["addr"].dtype == np.uint64
    sources = [t, pa.RecordBatchReader.from_batches(t.schema, t.to_batches(100))]
    sources += list(write_all(tmp_path, t).values())
    for source in sources:
        got = collect(source, batch_rows)
        for name, col in expect.items():
            assert got[name].dtype == col.dtype and (got[name] == col).all(), (source, name)


def test_absent_ts_is_the_row_number_and_narrow_columns_are_widened():
    t = table(ts=None, addr=pa.array(np.arange(N, dtype=np.int32) * 4096),
              cpu=pa.array(np.full(N, 3, np.int64)))
    got = collect(t, 64)
    assert (got["ts"] == np.arange(N)).all() and got["addr"].dtype == np.uint64
    assert (got["cpu"] == 3).all() and got["cpu"].dtype == np.uint16


def test_missing_required_column_names_file_and_column(tmp_path):
    p = tmp_path / "nocpu.parquet"
    pq.write_table(table(cpu=None), p)
    with pytest.raises(TraceError, match=r"missing required column.*nocpu.parquet.*'cpu'"):
        list(open_trace(p))


@pytest.mark.parametrize("column, values, row, value", [
    ("cpu", np.where(np.arange(N) == 612, 70000, 1), 612, 70000),
    ("addr", np.where(np.arange(N) == 5, -1, 4096), 5, -1),
])
def test_value_that_does_not_fit_names_column_row_and_value(column, values, row, value):
    t = table(**{column: pa.array(values.astype(np.int64))})
    with pytest.raises(TraceError) as e:
        list(open_trace(t, batch_rows=100))
    assert (e.value.column, e.value.row, e.value.value) == (column, row, value)


def test_ts_going_backwards_and_unknown_op(tmp_path):
    ts = np.arange(N, dtype=np.uint64)
    ts[777] = 3
    with pytest.raises(TraceError) as e:
        list(open_trace(table(ts=pa.array(ts)), batch_rows=500))
    assert (e.value.column, e.value.row, e.value.value) == ("ts", 777, 3)
    op = np.zeros(N, np.uint8)
    op[901] = 42
    with pytest.raises(TraceError) as e:
        list(open_trace(table(op=pa.array(op)), batch_rows=64))
    assert (e.value.column, e.value.row, e.value.value) == ("op", 901, 42)


def test_non_integer_column_and_truncated_file(tmp_path):
    with pytest.raises(TraceError, match="'addr' must be an integer column"):
        list(open_trace(table(addr=pa.array(np.ones(N)))))
    paths = write_all(tmp_path, table())
    data = paths["file"].read_bytes()
    bad = tmp_path / "cut.arrow"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="truncated or corrupt.*cut.arrow"):
        list(open_trace(bad))
    with pytest.raises(TraceError, match="no such trace file"):
        list(open_trace(tmp_path / "nothing.arrow"))


@pytest.mark.parametrize("n", [1, 4095, 4096, 4097, 3 * 4096 + 5])
def test_trace_checks_find_the_first_bad_row_in_any_chunk(n):
    """The chunked, branch-free checks (trace/_jit_checks.py) agree with a plain scan, at
    and around the chunk edges."""
    from fastnuma.trace._jit_checks import CHUNK, first_above, first_decrease
    rng = np.random.default_rng(n)
    for _ in range(30):
        ts = np.cumsum(rng.integers(0, 3, n)).astype(np.uint64) + np.uint64(5)
        op = rng.integers(0, 8, n).astype(np.uint8)
        if rng.random() < 0.8:
            at = int(rng.choice([0, n - 1, min(CHUNK, n - 1), int(rng.integers(0, n))]))
            ts[at:] -= np.uint64(2 if at else 6)
            op[at] = 9
        last = np.uint64(rng.integers(0, 6))
        prev = np.concatenate([[last], ts[:-1]])
        down = np.flatnonzero(ts < prev)
        above = np.flatnonzero(op > 7)
        assert first_decrease(ts, last) == (down[0] if down.size else -1)
        assert first_above(op, np.uint8(7)) == (above[0] if above.size else -1)


@pytest.mark.parametrize("n", [1, 2, 4097])
def test_numpy_trace_checks_agree_with_the_compiled_ones(n, monkeypatch):
    """trace/checks.py without Numba loaded (info, convert) finds the same rows."""
    import sys
    from fastnuma.trace import _jit_checks, checks
    rng = np.random.default_rng(n)
    for _ in range(30):
        ts = np.cumsum(rng.integers(0, 3, n)).astype(np.uint64) + np.uint64(5)
        op = rng.integers(0, 8, n).astype(np.uint8)
        if rng.random() < 0.8:
            at = int(rng.integers(0, n))
            ts[at:] -= np.uint64(2 if at else 6)
            op[at] = 9
        last = np.uint64(rng.integers(0, 6))
        want = (_jit_checks.first_decrease(ts, last), _jit_checks.first_above(op, np.uint8(7)))
        with monkeypatch.context() as mp:
            mp.delitem(sys.modules, "numba")
            got = (checks.first_decrease(ts, last), checks.first_above(op, np.uint8(7)))
        assert got == want
