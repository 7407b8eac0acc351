"""Trace replay (Simulator.replay): formats and batch sizes give identical reports, replay
equals driving the same events through the API, sparse traces stay small, time drives
NUMA balancing, bad input names its place, reports write whole files."""
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import fastnuma as fn
from fastnuma.errors import TraceError

TYPES = {"addr": pa.uint64(), "cpu": pa.uint16(), "op": pa.uint8(), "ts": pa.uint64(),
         "tid": pa.uint32(), "pid": pa.uint32(), "len": pa.uint64(), "mode": pa.uint16(),
         "nodemask": pa.uint64(), "flags": pa.uint32()}
BASE = 0x7f0000000000 - (64 << 20)
MAPF = fn.MAP_PRIVATE | fn.MAP_ANONYMOUS


def table(events):
    """events: dicts with some of the trace columns (missing ones take 0)."""
    cols = {k: [e.get(k, 0) for e in events] for k in TYPES}
    if not any("ts" in e for e in events):
        del cols["ts"]
    return pa.table({k: pa.array(v, TYPES[k]) for k, v in cols.items()})


def topo():
    return fn.Topology.uniform(nodes=4, cpus_per_node=2, pages_per_node=1 << 14)


def lazy_events(n=64, ts_step=1):
    """The motivating scenario: the main thread writes 4n pages; 4 workers appear; the
    array is marked lazily; each worker reads its quarter."""
    ev = [dict(op=fn.OP_MMAP, addr=BASE, len=4 * n * 4096, flags=MAPF, tid=1, pid=1)]
    ev += [dict(op=fn.OP_WRITE, addr=BASE + p * 4096, tid=1, pid=1) for p in range(4 * n)]
    ev += [dict(op=fn.OP_SCHED, cpu=2 * w, tid=10 + w, pid=1) for w in range(4)]
    ev += [dict(op=fn.OP_MBIND, addr=BASE, len=4 * n * 4096, mode=fn.MPOL_LOCAL,
                flags=fn.MPOL_MF_MOVE | fn.MPOL_MF_LAZY, tid=1, pid=1)]
    for w in range(4):
        ev += [dict(op=fn.OP_READ, addr=BASE + p * 4096, cpu=2 * w, tid=10 + w, pid=1)
               for p in range(w * n, (w + 1) * n)]
    for k, e in enumerate(ev):
        e["ts"] = k * ts_step
    return ev


def comparable(report):
    """Everything a report holds, as plain data."""
    t = report.to_tables()
    return {name: tab.to_pylist() for name, tab in t.items()} | {
        "summary": report.summary_dict()}


def test_lazy_scenario_counters():
    n = 64
    sim = fn.Simulator(topo())
    events = lazy_events(n, ts_step=10)
    r = sim.replay(table(events))
    assert sim.now_ns == r.now_ns == events[-1]["ts"]      # the clock ends at the last event
    vm = r.vmstat
    assert (vm["numa_pte_updates"], vm["numa_hint_faults"], vm["numa_hint_faults_local"],
            vm["numa_pages_migrated"]) == (4 * n, 4 * n, n, 3 * n)
    nodes = sim.page_nodes(1, BASE, 4 * n * 4096)
    for w in range(4):
        assert (nodes[w * n:(w + 1) * n] == w).all()
    assert r.placement[1].tolist() == [n, n, n, n]
    assert sorted(sim.tids(1)) == [1, 10, 11, 12, 13]
    assert [t["local"] for t in r.threads] == [4 * n, n, n, n, n]


@pytest.fixture(scope="module")
def lazy_table():
    return table(lazy_events(48, ts_step=3))


def test_formats_and_directories_give_identical_reports(tmp_path, lazy_table):
    ref = comparable(fn.Simulator(topo()).replay(lazy_table, epoch_events=100))
    t = lazy_table
    paths = {"file": tmp_path / "t.arrow", "stream": tmp_path / "t.arrows",
             "parquet": tmp_path / "t.parquet"}
    with ipc.new_file(paths["file"], t.schema) as w:
        w.write_table(t, max_chunksize=100)
    with ipc.new_stream(paths["stream"], t.schema) as w:
        w.write_table(t, max_chunksize=33)
    pq.write_table(t, paths["parquet"], row_group_size=57)
    split = tmp_path / "split"
    split.mkdir()
    for k, start in enumerate(range(0, t.num_rows, 120)):
        pq.write_table(t.slice(start, 120), split / f"part{k:03d}.parquet")
    sources = list(paths.values()) + [split, str(split / "part*.parquet"),
                                      pa.RecordBatchReader.from_batches(t.schema, t.to_batches())]
    for src in sources:
        assert comparable(fn.Simulator(topo()).replay(src, epoch_events=100)) == ref, src


@pytest.mark.parametrize("batch_rows", [1, 7, 1_000_000])
def test_batch_size_does_not_matter(lazy_table, batch_rows):
    ref = comparable(fn.Simulator(topo()).replay(lazy_table, epoch_events=50))
    got = comparable(fn.Simulator(topo()).replay(lazy_table, epoch_events=50,
                                                 batch_rows=batch_rows))
    assert got == ref


def random_program(seed, n=1500, bursts=False, streams=False):
    """A random trace: two threads on random CPUs reading and writing 256 pages, an
    interleave mbind, a lazy mbind halfway, time passing (NUMA scans with small knobs).
    ``bursts``: events come in bursts of up to 40 by one thread on one CPU, over pages
    in order or at random, so that the event loop's runs (kernels/events.py) start and
    end in every way: a node or op change, a write to a clean page, a marked PTE.
    ``streams``: bursts of up to 120 pages in order, and the lazy mbind every 200 events,
    so that streams of hinting faults (kernels/fault_stream.py) start and end in every
    way: another thread or CPU, a page already unmarked, the end of the mapping, a
    scanner tick or the end of a batch."""
    rng = np.random.default_rng(seed)
    longest, in_order = (120, 1.0) if streams else (40, 0.5)
    ev = [dict(op=fn.OP_MMAP, addr=BASE, len=256 * 4096, flags=MAPF, tid=1, pid=1),
          dict(op=fn.OP_SCHED, cpu=3, tid=2, pid=1),
          dict(op=fn.OP_MBIND, addr=BASE, len=64 * 4096, mode=fn.MPOL_INTERLEAVE,
               nodemask=0b0110, tid=1, pid=1)]
    burst = []
    for k in range(n):
        if not bursts:
            ev.append(dict(op=int(rng.integers(0, 2)),
                           addr=BASE + int(rng.integers(0, 256)) * 4096,
                           cpu=int(rng.integers(0, 8)), tid=int(rng.integers(1, 3)), pid=1))
        else:
            if not burst:
                tid, cpu = int(rng.integers(1, 3)), int(rng.integers(0, 8))
                size = int(rng.integers(1, longest + 1))
                pages = ((int(rng.integers(0, 256)) + np.arange(size)) % 256
                         if rng.random() < in_order else rng.integers(0, 256, size))
                writes = rng.random() * (rng.random() < 0.7)    # some bursts only read
                burst = [(int(pg), int(rng.random() < writes), tid, cpu) for pg in pages]
            page, op, tid, cpu = burst.pop(0)
            ev.append(dict(op=op, addr=BASE + page * 4096, cpu=cpu, tid=tid, pid=1))
        if k == n // 2 or (streams and k % 200 == 199):
            ev.append(dict(op=fn.OP_MBIND, addr=BASE, len=256 * 4096, mode=fn.MPOL_LOCAL,
                           flags=fn.MPOL_MF_MOVE | fn.MPOL_MF_LAZY, tid=2, pid=1))
    ts = np.sort(rng.integers(0, 400_000_000, len(ev)))
    for e, t in zip(ev, ts):
        e["ts"] = int(t)
    return ev


def drive(machine, ev):
    """The same events through the API, one call at a time (what replay must equal)."""
    pid = machine.spawn(cpu=0)                 # the trace's first event (ts = its time 0)
    t0 = ev[0]["ts"]
    machine.mmap(pid, 256 * 4096, MAPF, addr=BASE)
    machine.advance(ev[1]["ts"] - t0)
    assert machine.clone(pid, cpu=3) == 2      # thread 2 appears at its first event
    machine.advance(ev[2]["ts"] - ev[1]["ts"])
    machine.mbind(pid, BASE, 64 * 4096, fn.MPOL_INTERLEAVE, {1, 2})
    now = ev[2]["ts"]
    for e in ev[3:]:
        machine.advance(e["ts"] - now)
        now = e["ts"]
        if e["op"] == fn.OP_MBIND:
            machine.sched(e["tid"], e.get("cpu", 0))     # a thread's CPU is its latest event's
            machine.mbind(pid, BASE, 256 * 4096, fn.MPOL_LOCAL, None,
                          fn.MPOL_MF_MOVE | fn.MPOL_MF_LAZY, tid=2)
            continue
        machine.sched(e["tid"], e["cpu"])
        machine.access(e["tid"], e["addr"], write=bool(e["op"]))


KNOBS = dict(numa_balancing=1, numa_balancing_scan_delay_ms=50,
             numa_balancing_scan_period_min_ms=20, numa_balancing_scan_size_mb=1)


@pytest.mark.parametrize("seed, bursts, streams", [
    (1, False, False), (2, False, False), (3, False, False), (4, True, False),
    (5, True, False), (6, True, False), (7, True, True), (8, True, True)])
def test_replay_equals_the_api_and_the_model_call_by_call(seed, bursts, streams, make):
    ev = random_program(seed, bursts=bursts, streams=streams)
    sim = fn.Simulator(topo(), **KNOBS)
    report = sim.replay(table(ev), batch_rows=97)
    other = make(dict(node_pages=[1 << 14] * 4, node_cpus=[[0, 1], [2, 3], [4, 5], [6, 7]]),
                 **KNOBS)
    drive(other, ev)
    placed = np.zeros(4, np.int64)             # the report's placement: its numa_maps' sum
    for node, pages in re.findall(r" N(\d+)=(\d+)", other.numa_maps(1)):
        placed[int(node)] += int(pages)
    assert report.placement[1].tolist() == placed.tolist()
    assert sim.vmstat() == other.vmstat()
    assert sim.vmstat()["numa_hint_faults"] > (500 if streams else 0)
    assert list(sim.page_nodes(1, BASE, 256 * 4096)) == list(other.page_nodes(1, BASE,
                                                                            256 * 4096))
    assert sim.numa_maps(1) == other.numa_maps(1)
    assert (sim.access_counts == np.asarray(other.access_counts)).all()
    for tid in (1, 2):
        assert sim.task_numa_stats(tid) == other.task_numa_stats(tid)
        assert (sim.threads[tid].local, sim.threads[tid].remote, sim.threads[tid].cpu) == \
            (other.threads[tid].local, other.threads[tid].remote, other.threads[tid].cpu)


def test_sparse_bare_trace_memory_follows_pages_touched():
    rng = np.random.default_rng(1)
    pages = rng.integers(0, 1 << 34, 2000)            # 2000 pages over 64 TiB
    t = pa.table({"addr": pa.array(pages * 4096, pa.uint64()),
                  "cpu": pa.array(rng.integers(0, 8, 2000), pa.uint16())})
    sim = fn.Simulator(topo())
    r = sim.replay(t)
    assert r.implicit_mappings == len(np.unique(pages >> 9))     # 2 MiB regions
    assert sim.pt.ptes.nbytes < 64 << 20
    assert sum(r.placement[0]) == 0                    # reads: the zero page
    assert r.vmstat["pgfault"] == 2000
    # strict mode: every access is a segfault event, nothing is mapped
    sim = fn.Simulator(topo())
    r = sim.replay(t, strict=True)
    assert len(r.faults) == 2000 and r.faults[0][1] == "segfault"
    assert r.vmstat["pgfault"] == 0


def test_numa_balancing_scans_fire_from_trace_time():
    n = 512
    ev = [dict(op=fn.OP_MMAP, addr=BASE, len=n * 4096, flags=MAPF, tid=1, pid=1)]
    ev += [dict(op=fn.OP_WRITE, addr=BASE + p * 4096, tid=1, pid=1) for p in range(n)]
    # a second thread on node 1 keeps reading the array for 3 simulated seconds
    reads = [dict(op=fn.OP_READ, addr=BASE + (k % n) * 4096, cpu=2, tid=2, pid=1)
             for k in range(6 * n)]
    for k, e in enumerate(ev):
        e["ts"] = k
    for k, e in enumerate(reads):
        e["ts"] = 1000 + k * (3_000_000_000 // len(reads))
    sim = fn.Simulator(topo(), numa_balancing=1)
    r = sim.replay(table(ev + reads), epoch_ns=500_000_000)
    vm = r.vmstat
    assert vm["numa_pte_updates"] >= n and vm["numa_hint_faults"] >= n
    assert vm["numa_pages_migrated"] == n              # all migrate to the reader's node
    assert (sim.page_nodes(1, BASE, n * 4096) == 1).all()
    ep = r.to_tables()["epochs"].to_pydict()
    assert ep["end_ns"][:5] == [500_000_000 * k for k in range(1, 6)]
    assert len(ep["end_ns"]) == 6                      # the last, partial epoch
    assert sum(ep["numa_pages_migrated"]) == n
    # without balancing nothing moves
    sim = fn.Simulator(topo(), numa_balancing=0)
    assert sim.replay(table(ev + reads)).vmstat["numa_hint_faults"] == 0


def test_bad_input_names_the_place(tmp_path):
    ev = [dict(op=fn.OP_MMAP, addr=BASE, len=4096, flags=MAPF, tid=1, pid=1),
          dict(op=fn.OP_READ, addr=BASE, tid=1, pid=1),
          dict(op=fn.OP_READ, addr=BASE, tid=1, pid=2)]
    path = tmp_path / "bad.arrow"
    t = table(ev)
    with ipc.new_file(path, t.schema) as w:
        w.write_table(t)
    with pytest.raises(TraceError) as e:
        fn.Simulator(topo()).replay(path)
    assert (e.value.path, e.value.column, e.value.row, e.value.value) == (str(path), "pid", 2, 2)
    assert "thread 1 belongs to process 1" in str(e.value)
    ev[2] = dict(op=fn.OP_READ, addr=BASE, cpu=99, tid=1, pid=1)
    with pytest.raises(TraceError) as e:
        fn.Simulator(topo()).replay(table(ev))
    assert (e.value.column, e.value.row, e.value.value) == ("cpu", 2, 99)


def test_failed_calls_are_recorded_not_fatal():
    ev = [dict(op=fn.OP_MMAP, addr=BASE, len=4096, flags=MAPF, tid=1, pid=1),
          dict(op=fn.OP_MBIND, addr=BASE + 4096, len=4096, mode=fn.MPOL_BIND, nodemask=1,
               tid=1, pid=1),
          dict(op=fn.OP_WRITE, addr=BASE, tid=1, pid=1)]
    r = fn.Simulator(topo()).replay(table(ev))
    assert [(f[0], f[1], f[4]) for f in r.failed_calls] == [(1, "MBIND", 14)]   # EFAULT
    assert r.vmstat["pgfault"] == 1


def test_report_writes_whole_files(tmp_path):
    r = fn.Simulator(topo()).replay(table(lazy_events(16)), epoch_events=64)
    out = tmp_path / "out"
    r.write(out)
    names = sorted(os.listdir(out))
    assert names == sorted(["counters.parquet", "nodes.parquet", "access_matrix.parquet",
                            "threads.parquet", "placement.parquet", "faults.parquet",
                            "failed_calls.parquet", "epochs.parquet", "summary.json"])
    assert pq.read_table(out / "epochs.parquet").num_rows == len(r.epochs)
    assert "numa_pages_migrated" in r.summary()
