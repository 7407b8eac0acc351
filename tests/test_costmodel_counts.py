"""The cost model's trace counts (costmodel.TraceCounter, kernel
kernels/costmodel.count_events) against a plain-Python reference, on random traces cut
into random batches, with the epoch ends known only as the replay would know them (those
closed by the end of each batch); and a what-if run (counted as it replays) against the
cost model's own pass over the file."""
import numpy as np
import pyarrow as pa
from hypothesis import given, settings, strategies as st

import fastnuma as fn
from fastnuma.costmodel import CostModel, TraceCounter, trace_pass
from fastnuma.kernels.llc import llc_filter, new_cache
from fastnuma.runconfig import RunConfig
from fastnuma.topology import Topology
from fastnuma.trace.generate import generate
from fastnuma.trace.reader import TraceBatch
from fastnuma.whatif import run

TOPO = Topology([64, 64, 64], [[0, 1], [2], []])        # node 2: no CPUs
OPS = [fn.OP_READ, fn.OP_WRITE, fn.OP_MMAP, fn.OP_MBIND]


def reference(op, cpu, tid, count, reach, ends, topo=TOPO):
    """N, W, P and the per-thread totals, one row at a time (docs/cost-model.md)."""
    E = len(ends)
    N = np.zeros((E, topo.n_nodes), np.int64)
    W = np.zeros((E, topo.n_nodes))
    pairs, t_events, t_weight = set(), {}, {}
    for r in range(len(op)):
        e = min(int(np.searchsorted(ends, r, side="right")), E - 1)
        nd = topo.cpu_node[cpu[r]]
        acc = op[r] in (fn.OP_READ, fn.OP_WRITE)
        w = float(count[r]) if acc and reach[r] else 0.0
        N[e, nd] += acc
        W[e, nd] += w
        t = int(tid[r])
        t_events[t] = t_events.get(t, 0) + acc
        t_weight[t] = t_weight.get(t, 0.0) + w
        if acc:
            pairs.add((e, t))
    P = np.bincount([e for e, _ in pairs], minlength=E).astype(np.int64)
    return N, W, P, t_events, t_weight


def batch(row, addr, op, cpu, tid, count):
    z = np.zeros(len(op), np.uint64)
    return TraceBatch(row=row, addr=addr, cpu=cpu, op=op, ts=z, tid=tid, pid=tid, len=z,
                      mode=z.astype(np.uint16), nodemask=z, flags=z.astype(np.uint32),
                      count=count)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_counts_match_reference(data):
    n = data.draw(st.integers(1, 400))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    op = rng.choice(np.array(OPS, np.uint8), n, p=[0.45, 0.45, 0.05, 0.05])
    cpu = rng.integers(0, 3, n).astype(np.uint16)
    n_tids = data.draw(st.integers(1, 150))        # past the first table's size: rehash
    pool = np.concatenate([rng.integers(0, 70_000, n_tids),      # at the tid, or hashed
                           rng.integers(0, 2**32, n_tids, dtype=np.uint64)])
    tid = rng.choice(pool, n).astype(np.uint32)
    count = rng.integers(0, 5, n).astype(np.uint32)
    addr = (rng.integers(0, 2000, n) * 64).astype(np.uint64)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=6)) if n > 1 else []))
    inner = sorted(data.draw(st.lists(st.integers(1, n), max_size=8)))  # duplicates allowed
    ends = np.array(inner + [n] if not inner or inner[-1] != n else inner, np.int64)
    llc = data.draw(st.booleans())
    model = CostModel(llc="on" if llc else "off", llc_bytes=4096, llc_ways=2)

    reach = np.ones(n, np.uint8)
    if llc:
        is_acc = np.isin(op, [fn.OP_READ, fn.OP_WRITE])
        llc_filter(addr, np.array(TOPO.cpu_node)[cpu], is_acc,
                   *new_cache(3, 4096, 2), reach)
    want = reference(op, cpu, tid, count, reach, ends)

    counter = TraceCounter(TOPO, model, llc, batch_rows=16)
    for lo, hi in zip([0] + cuts, cuts + [n]):
        known = ends[ends <= hi]                 # the epochs closed when the batch is done
        counter.add(batch(lo, addr[lo:hi], op[lo:hi], cpu[lo:hi], tid[lo:hi],
                          count[lo:hi]), known)
    got = counter.result(len(ends))
    np.testing.assert_array_equal(got.events, want[0])
    np.testing.assert_array_equal(got.weight, want[1])
    np.testing.assert_array_equal(got.threads, want[2])
    assert got.thread_events == want[3]
    assert got.thread_weight == want[4]
    assert got.llc == llc


def test_bad_cpu_names_its_row():
    counter = TraceCounter(TOPO, CostModel(llc="off"), False)
    op = np.full(3, fn.OP_READ, np.uint8)
    b = batch(10, np.zeros(3, np.uint64), op, np.array([0, 1, 7], np.uint16),
              np.zeros(3, np.uint32), None)
    try:
        counter.add(b, np.zeros(0, np.int64))
    except IndexError as e:
        assert "row 12: CPU 7" in str(e)
    else:
        raise AssertionError("no error for CPU 7")


def test_counts_as_the_replay_closes_epochs(tmp_path):
    """Counted through Simulator.replay's on_batch, with epochs of time (closed at the
    first event past their end, possibly in the next batch) and small batches: as the
    reference over the whole file with the report's epochs; and a what-if run's cost
    tables are those of the cost model's separate pass."""
    path = str(tmp_path / "t.arrow")
    t = pa.Table.from_batches(list(generate("uniform", 30_000, seed=3, pages=512, nodes=3,
                                            cpus_per_node=1, threads=6)))
    with pa.ipc.new_file(path, t.schema) as w:
        w.write_table(t)
    topo = Topology([4096] * 3, [[0], [1], [2]])
    sim = fn.Simulator(topo)
    counter = TraceCounter(topo, CostModel(llc="off"), False, 4096)
    report = sim.replay(path, epoch_ns=500_000, batch_rows=4096, on_batch=counter.add)
    ends = np.array([e[0] for e in report.epochs], np.int64)
    assert len(ends) > 3 and ends[-1] == 30_000
    op, cpu, tid = (t.column(c).to_numpy() for c in ("op", "cpu", "tid"))
    count = t.column("count").to_numpy()
    want = reference(op, cpu, tid, count, np.ones(len(op), np.uint8), ends, topo)
    got = counter.result(len(ends))
    np.testing.assert_array_equal(got.events, want[0])
    np.testing.assert_array_equal(got.weight, want[1])
    np.testing.assert_array_equal(got.threads, want[2])
    assert got.thread_events == want[3] and got.thread_weight == want[4]

    cfg = RunConfig.from_dict({"machine": {"nodes": [{"memory": "16MiB", "cpus": str(c)}
                                                     for c in range(3)]},
                               "replay": {"epoch": "500us", "batch_rows": 4096}})
    whatif = run(cfg, path)
    sep = trace_pass(path, cfg.topology(path), [e[0] for e in whatif.epochs], cfg.cost,
                     None, 4096)
    from fastnuma.costmodel import estimate
    again = estimate(whatif, sep, cfg.topology(path), cfg.cost)
    assert whatif.cost["epochs"].equals(again["epochs"])
    assert whatif.cost["threads"].equals(again["threads"])
    assert whatif.cost["estimated_ns"] == again["estimated_ns"]
