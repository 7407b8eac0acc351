"""Trace writer (atomic, every container round-trips), synthetic scenarios (structure,
determinism, bounded batches), the distinct-page counter of ``info``, bundled traces."""
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fastnuma import TraceError
from fastnuma.constants import (MAP_ANONYMOUS, MAP_PRIVATE, MPOL_LOCAL, MPOL_MF_LAZY,
                                MPOL_MF_MOVE, OP_MBIND, OP_MMAP, OP_READ, OP_SCHED, OP_WRITE,
                                PAGE_SIZE)
from fastnuma.trace import open_trace
from fastnuma.trace.generate import BASE_ADDR, SCENARIOS, generate, write_trace
from fastnuma.trace.info import PageSet, read_schema, trace_info
from fastnuma.trace.schema import COLUMNS
from fastnuma.trace.writer import TraceWriter

TRACES = Path(__file__).resolve().parents[1] / "traces"
NAMES = tuple(COLUMNS)
EXTS = (".arrow", ".arrows", ".parquet")


def read(source, batch_rows=1 << 20):
    parts = [{n: getattr(b, n).copy() for n in NAMES} for b in open_trace(source, batch_rows)]
    if not parts:
        return {n: np.zeros(0, COLUMNS[n][0]) for n in NAMES}
    return {n: np.concatenate([p[n] for p in parts]) for n in NAMES}


def table(batches):
    return pa.Table.from_batches(list(batches))


def cols(scenario, events, **params):
    return read(table(generate(scenario, events, **params)))


def leftovers(directory):
    return [n for n in os.listdir(directory) if n.endswith(".tmp")]


def sample(n=500, seed=0):
    rng = np.random.default_rng(seed)
    return {"addr": rng.integers(0, 1 << 40, n).astype(np.int64),      # widened on write
            "cpu": rng.integers(0, 8, n), "op": rng.integers(0, 2, n),
            "ts": np.arange(n) * 7, "pid": np.full(n, 3)}


# ------------------------------------------------------------------ writer
@pytest.mark.parametrize("ext", EXTS)
def test_writer_round_trips_every_format(tmp_path, ext):
    path = tmp_path / f"t{ext}"
    data = sample()
    with TraceWriter(path, generator={"scenario": "x"}, topology={"nodes": 2}) as w:
        for lo in range(0, 500, 128):
            w.write({k: v[lo:lo + 128] for k, v in data.items()})
    assert w.rows == 500 and not leftovers(tmp_path)
    got = read(path, batch_rows=77)
    for name, values in data.items():
        assert got[name].dtype == COLUMNS[name][0] and (got[name] == values).all(), name
    assert (got["tid"] == got["cpu"]).all() and (got["flags"] == 0).all()
    meta = read_schema(str(path)).metadata
    assert meta[b"fastnuma.trace.version"] == b"1"
    assert json.loads(meta[b"fastnuma.trace.generator"]) == {"scenario": "x"}
    assert json.loads(meta[b"fastnuma.trace.topology"]) == {"nodes": 2}
    assert read_schema(str(path)).names == ["addr", "cpu", "op", "ts", "pid"]


def test_generated_trace_is_identical_in_all_formats(tmp_path):
    expect = cols("lazy", 3000, pages=64, seed=9)
    for ext in EXTS:
        write_trace(tmp_path / f"lazy{ext}", "lazy", 3000, 9, pages=64, batch_rows=500)
        got = read(tmp_path / f"lazy{ext}", batch_rows=333)
        for name in NAMES:
            assert (got[name] == expect[name]).all(), (ext, name)


def test_exception_mid_write_leaves_no_file(tmp_path):
    path = tmp_path / "t.arrow"
    with pytest.raises(RuntimeError):
        with TraceWriter(path) as w:
            w.write(sample())
            assert leftovers(tmp_path)                 # the data goes to a temporary file
            raise RuntimeError("generator failed")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("ext", EXTS)
def test_failed_write_does_not_clobber_an_existing_file(tmp_path, ext):
    path = tmp_path / f"t{ext}"
    write_trace(path, "uniform", 300, 1, pages=16)
    before = path.read_bytes()
    bad = sample(100)
    bad["ts"] = bad["ts"][::-1].copy()                  # ts goes backwards at row 500
    with pytest.raises(TraceError) as e:
        with TraceWriter(path) as w:
            w.write(sample(500))
            w.write(bad)
    assert (e.value.column, e.value.row) == ("ts", 500)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == [path.name]


def test_absent_columns_are_filled_as_a_reader_would(tmp_path):
    path = tmp_path / "t.parquet"
    with TraceWriter(path, columns=["op", "ts", "tid", "mode"]) as w:
        w.write({"addr": [4096, 8192], "cpu": [1, 2], "op": [1, 0], "ts": [0, 1],
                 "tid": [9, 9], "mode": [2, 2]})
        w.write(pa.table({"addr": pa.array([12288], pa.uint64()), "cpu": pa.array([3])}))
    got = read(path)
    assert got["op"].tolist() == [1, 0, 0] and got["ts"].tolist() == [0, 1, 2]
    assert got["tid"].tolist() == [9, 9, 3] and got["mode"].tolist() == [2, 2, 0]
    assert read_schema(str(path)).names == ["addr", "cpu", "op", "ts", "tid", "mode"]


def test_writer_rejects_bad_columns_and_values(tmp_path):
    path = tmp_path / "t.arrow"
    with pytest.raises(ValueError, match="no column 'adr'"), TraceWriter(path) as w:
        w.write({"adr": [1], "cpu": [0]})
    with pytest.raises(ValueError, match="'ts' is not stored"), TraceWriter(path) as w:
        w.write({"addr": [1], "cpu": [0]})
        w.write({"addr": [1], "cpu": [0], "ts": [3]})
    with pytest.raises(TraceError) as e, TraceWriter(path) as w:
        w.write({"addr": [1, 2], "cpu": [0, 70000]})
    assert (e.value.column, e.value.row, e.value.value) == ("cpu", 1, 70000)
    with pytest.raises(TraceError, match="unknown op"), TraceWriter(path) as w:
        w.write({"addr": [1], "cpu": [0], "op": [9]})
    with pytest.raises(TraceError, match="missing required column"), TraceWriter(path) as w:
        w.write({"addr": [1]})
    with pytest.raises(ValueError, match="extension"):
        TraceWriter(tmp_path / "t.csv")
    with pytest.raises(FileNotFoundError):
        TraceWriter(tmp_path / "no" / "t.arrow")
    assert os.listdir(tmp_path) == []


def test_empty_trace_has_the_required_columns(tmp_path):
    with TraceWriter(tmp_path / "e.arrows"):
        pass
    assert read_schema(str(tmp_path / "e.arrows")).names == ["addr", "cpu"]
    assert read(tmp_path / "e.arrows")["addr"].size == 0


# ------------------------------------------------------------------ scenarios
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenarios_are_deterministic_counted_and_batched(scenario):
    params = dict(pages=96, nodes=2, cpus_per_node=2, seed=5)
    batches = list(generate(scenario, 2500, batch_rows=333, **params))
    assert sum(b.num_rows for b in batches) == 2500
    assert all(0 < b.num_rows <= 333 for b in batches)
    assert [f.name for f in batches[0].schema] == list(NAMES)
    a = read(table(batches))                           # the reader's checks (ts order, op)
    b = cols(scenario, 2500, batch_rows=4096, **params)
    assert all((a[n] == b[n]).all() for n in NAMES)    # batch size changes nothing
    if scenario in ("lazy", "uniform", "zipf", "phase"):
        c = cols(scenario, 2500, **dict(params, seed=6))
        assert not (a["addr"] == c["addr"]).all()
    assert a["op"][0] == OP_MMAP and a["addr"][0] == BASE_ADDR
    assert a["len"][0] == 96 * PAGE_SIZE and a["flags"][0] == MAP_PRIVATE | MAP_ANONYMOUS
    access = a["op"] <= OP_WRITE
    assert (a["addr"][access] >= BASE_ADDR).all()
    assert (a["addr"][access] < BASE_ADDR + 96 * PAGE_SIZE).all()
    assert (a["pid"] == 1).all() and (np.diff(a["ts"].astype(np.int64)) >= 0).all()
    bare = table(generate(scenario, 700, bare=True, batch_rows=256, **params))
    assert bare.num_rows == 700 and bare.schema.names == ["addr", "cpu"]


def test_generation_memory_does_not_depend_on_events():
    first = next(iter(generate("zipf", 10**15, batch_rows=1000, pages=1 << 30)))
    assert first.num_rows == 1000                     # lazily streamed, nothing precomputed


@pytest.mark.parametrize("pages, threads", [(64, None), (67, 3)])
def test_lazy_event_order(pages, threads):
    nodes, cpn = 4, 4
    c = cols("lazy", 2000, pages=pages, threads=threads, nodes=nodes, cpus_per_node=cpn)
    w = threads or nodes
    op, tid, page = c["op"], c["tid"], (c["addr"] - BASE_ADDR) // PAGE_SIZE
    assert op[0] == OP_MMAP
    writes = slice(1, 1 + pages)
    assert (op[writes] == OP_WRITE).all() and (page[writes] == np.arange(pages)).all()
    assert (tid[writes] == 1).all() and (c["cpu"][writes] == 0).all()
    sched = slice(1 + pages, 1 + pages + w)
    assert (op[sched] == OP_SCHED).all()
    workers = tid[sched]
    assert len(set(workers.tolist()) | {1}) == w + 1
    assert ((c["cpu"][sched] // cpn) == np.arange(w) % nodes).all()
    k = 1 + pages + w
    assert op[k] == OP_MBIND and c["addr"][k] == BASE_ADDR and c["len"][k] == pages * 4096
    assert c["mode"][k] == MPOL_LOCAL and c["nodemask"][k] == 0
    assert c["flags"][k] == MPOL_MF_MOVE | MPOL_MF_LAZY
    reads = slice(k + 1, k + 1 + pages)
    assert (op[reads] == OP_READ).all()
    assert sorted(page[reads].tolist()) == list(range(pages))  # every page read once
    share = {}
    for t in workers.tolist():                         # each worker: a contiguous share
        mine = np.sort(page[reads][tid[reads] == t])
        assert (np.diff(mine) == 1).all() and abs(mine.size - pages / w) < 1
        share[t] = (mine[0], mine[-1])
    rest = slice(k + 1 + pages, None)
    assert np.isin(op[rest], [OP_READ, OP_WRITE]).all() and np.isin(tid[rest], workers).all()
    lo = np.array([share[t][0] for t in tid[rest].tolist()])
    hi = np.array([share[t][1] for t in tid[rest].tolist()])
    assert ((page[rest] >= lo) & (page[rest] <= hi)).all()
    assert 0.15 < (op[rest] == OP_WRITE).mean() < 0.35


def test_op_mix_and_thread_placement():
    p = dict(pages=128, nodes=2, cpus_per_node=4)
    for name in ("numa01", "numa02"):
        c = cols(name, 3000, **p)
        acc = c["op"] <= OP_WRITE
        assert (c["op"][acc] == OP_WRITE).all() and np.unique(c["tid"][acc]).size == 8
    c = cols("sequential", 1000, stride=1024, **p)
    acc = c["op"] == OP_READ
    step = np.diff(c["addr"][acc].astype(np.int64)) % (128 * PAGE_SIZE)   # wraps at the end
    assert acc.sum() == 998 and (step == 1024).all()
    c = cols("prodcons", 2000, threads=4, **p)
    acc = c["op"] <= OP_WRITE
    node = c["cpu"][acc] // 4
    assert ((c["op"][acc] == OP_WRITE) == (node == 0)).all() and (node == 1).any()
    c = cols("uniform", 20000, write_fraction=0.5, **p)
    assert abs((c["op"] == OP_WRITE).mean() - 0.5) < 0.02


def test_numa01_shares_and_numa02_partitions():
    p = dict(pages=64, nodes=2, cpus_per_node=2, init=False)
    for name, shared in (("numa01", True), ("numa02", False)):
        c = cols(name, 1000, **p)
        acc = c["op"] == OP_WRITE
        page, tid = (c["addr"][acc] - BASE_ADDR) // PAGE_SIZE, c["tid"][acc]
        per = [set(page[tid == t].tolist()) for t in np.unique(tid)]
        if shared:
            assert all(s == set(range(64)) for s in per)
        else:
            assert sum(len(s) for s in per) == 64 and set().union(*per) == set(range(64))


def test_zipf_is_skewed_with_a_scattered_hot_set():
    c = cols("zipf", 40000, pages=4096, exponent=1.2)
    page = (c["addr"][c["op"] <= OP_WRITE] - BASE_ADDR) // PAGE_SIZE
    counts = np.sort(np.bincount(page.astype(np.int64), minlength=4096))[::-1]
    assert counts[:41].sum() > 0.5 * counts.sum()      # 1 % of the pages: most accesses
    hot = np.argsort(np.bincount(page.astype(np.int64), minlength=4096))[-16:]
    assert hot.max() - hot.min() > 2048                # not one contiguous run


def test_phase_moves_threads_between_nodes():
    c = cols("phase", 4000, pages=64, nodes=4, cpus_per_node=2, phases=3)
    sched = np.flatnonzero(c["op"] == OP_SCHED)
    assert sched.size == 12                            # 4 threads placed, then moved twice
    groups = [c["cpu"][sched[g * 4:(g + 1) * 4]] // 2 for g in range(3)]
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1]]
    acc = c["op"] <= OP_WRITE
    for t in range(1, 5):                              # same slice before and after moves
        pages = (c["addr"][acc & (c["tid"] == t)] - BASE_ADDR) // PAGE_SIZE
        assert pages.min() >= (t - 1) * 16 and pages.max() < t * 16


@pytest.mark.parametrize("call, match", [
    (lambda: generate("lazy", 10), "too few"),
    (lambda: generate("nope", 10), "unknown scenario"),
    (lambda: generate("uniform", 10, exponent=2.0), "no parameter 'exponent'"),
    (lambda: generate("uniform", 10, write_fraction=1.5), "write_fraction"),
    (lambda: generate("prodcons", 100, nodes=1), "nodes >= 2"),
    (lambda: generate("uniform", 100, pages=0), "pages = 0"),
])
def test_bad_parameters_fail_before_the_first_batch(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ info
def test_page_set_counts_exactly():
    rng = np.random.default_rng(1)
    s, seen = PageSet(), set()
    for _ in range(40):
        vpn = np.concatenate([rng.integers(0, 1 << 22, 300), rng.integers(0, 2048, 300),
                              rng.integers(0, 1 << 50, 5)]).astype(np.uint64)
        s.add(vpn)
        seen.update(vpn.tolist())
        assert len(s) == len(seen)
    assert s.blocks == len({v >> 9 for v in seen})


def test_trace_info_matches_the_columns(tmp_path):
    path = tmp_path / "z.arrows"
    write_trace(path, "zipf", 5000, 3, pages=1024, batch_rows=700)
    info = trace_info(path, batch_rows=300)
    c = read(path)
    acc = c["op"] <= OP_WRITE
    assert info.rows == 5000 and info.batches == 22 and info.ts_last == int(c["ts"][-1])
    assert info.distinct_pages == np.unique(c["addr"][acc] >> 12).size
    assert info.ops.tolist() == np.bincount(c["op"], minlength=9).tolist()
    assert (info.addr_min, info.addr_max) == (int(c["addr"][acc].min()),
                                              int(c["addr"][acc].max()))


# ------------------------------------------------------------------ bundled traces
def bundled():
    return sorted(p for p in TRACES.iterdir() if p.suffix in (".arrow", ".arrows", ".parquet"))


def test_bundled_traces_are_small_and_regenerate_identically():
    paths = bundled()
    assert "lazy_4node.arrow" in [p.name for p in paths]
    assert sum(p.stat().st_size for p in paths) < 4 << 20
    assert (TRACES / "lazy_4node.arrow").stat().st_size < 1 << 20
    readme = (TRACES / "README.md").read_text()
    for path in paths:
        gen = json.loads(read_schema(str(path)).metadata[b"fastnuma.trace.generator"])
        assert f"-o traces/{path.name}" in readme
        params = {k: v for k, v in gen.items()
                  if k not in ("generator", "scenario", "events", "seed")}
        expect = cols(gen["scenario"], gen["events"], seed=gen["seed"], **params)
        got = read(path)
        assert all((got[n] == expect[n]).all() for n in NAMES), path.name
