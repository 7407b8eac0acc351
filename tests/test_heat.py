"""The placement heatmap's kernel against a plain-Python reference, and in a replay."""
import numpy as np
import pyarrow as pa
from hypothesis import given, settings, strategies as st

import fastnuma as fn
from fastnuma.heat import HeatRecorder, bucket_span

TRACES = "traces"


def reference_heat(sim, pid, buckets):
    """Plain Python: the node of every page through the public move_pages (node, or
    negative for nothing / the zero page), bucketed over the span of the page tables."""
    proc = sim.procs[pid]
    blocks = sim.pt.blocks_of(proc.asid)
    pmds = sim.pt.pmds_of(blocks)
    lo, width = bucket_span(pmds, buckets)
    out = np.zeros((buckets, sim.topology.n_nodes), np.int64)
    for pmd in pmds.tolist():
        vpns = [(pmd << 9) + i for i in range(512)]
        inside = [v for v in vpns if sim.procs[pid].vmas.overlapping(v, v + 1)]
        if not inside:
            continue
        status = sim.move_pages(pid, [v << 12 for v in inside])
        for v, node in zip(inside, status):
            if node >= 0:
                out[(v - lo) // width, node] += 1
    return out


def recorded(rec, pid, buckets, n_nodes):
    t = rec.table().to_pydict()
    out = np.zeros((buckets, n_nodes), np.int64)
    for p, b, node, pages in zip(t["pid"], t["bucket"], t["node"], t["pages"]):
        if p == pid:
            out[b, node] += pages
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1500),
                                              st.integers(1, 300)), min_size=1, max_size=6),
       st.booleans())
def test_kernel_matches_reference(buckets, touches, thp):
    sim = fn.Simulator(fn.Topology.uniform(nodes=4, cpus_per_node=1),
                       thp="always" if thp else "never")
    pid = sim.spawn(cpu=0)
    addr = sim.mmap(pid, 8 << 20)
    for node, first, n in touches:
        th = sim.clone(pid, cpu=node)
        pages = addr + 4096 * np.arange(first, min(first + n, 2048))
        sim.access(th, pages, write=node % 2 == 0)     # reads of untouched: the zero page
    rec = HeatRecorder(sim, buckets)
    rec.sample(0, 0, 0)
    got = recorded(rec, pid, buckets, 4)
    assert np.array_equal(got, reference_heat(sim, pid, buckets))


def test_replay_heat_sums_to_the_pages_per_node_at_each_epoch():
    sim = fn.Simulator(fn.Topology.uniform(nodes=4, cpus_per_node=4))
    r = sim.replay(f"{TRACES}/lazy_4node.arrow", epoch_events=500, heat_buckets=16)
    heat = r.to_tables()["heat"]
    ep = r.to_tables()["epochs"].to_pydict()
    h = heat.to_pydict()
    per = np.zeros((len(r.epochs), 4), np.int64)
    np.add.at(per, (np.array(h["epoch"]), np.array(h["node"])), np.array(h["pages"]))
    for k in range(4):        # one process, no page cache: every allocated page is its own
        assert per[:, k].tolist() == ep[f"pages_node{k}"]
    assert per[-1].tolist() == r.placement[1].tolist() == [128, 128, 128, 128]
    assert set(h["bucket"]) <= set(range(16)) and heat.schema.field("start_addr").type == \
        pa.uint64()
    assert all(a < b for a, b in zip(h["start_addr"], h["end_addr"]))


def test_no_heat_unless_asked(tmp_path):
    sim = fn.Simulator(fn.Topology.uniform(nodes=4, cpus_per_node=4))
    r = sim.replay(f"{TRACES}/lazy_4node.arrow")
    assert r.heat is None and "heat" not in r.to_tables()
    for bad in (0, -1, 2.5, True):
        try:
            fn.Simulator(fn.Topology.uniform(nodes=2, cpus_per_node=1)).replay(
                f"{TRACES}/lazy_4node.arrow", heat_buckets=bad)
        except ValueError as e:
            assert "heat_buckets" in str(e)
        else:
            raise AssertionError(bad)
