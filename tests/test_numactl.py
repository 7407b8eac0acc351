"""numactl vocabulary: every node-list form, every policy flag as the task policy of the
traced processes, every CPU-map mode, and the replay hook that applies them."""
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

import fastnuma as fn
from fastnuma.errors import TraceError
from fastnuma.numactl import (UNMAPPED, CpuPlacement, parse_cpus, parse_nodes,
                              parse_policy)

BASE = 0x7f0000000000 - (64 << 20)


def four():
    return fn.Topology.four_socket(pages_per_node=1 << 12)


def cxl():
    return fn.Topology.cxl(pages_per_node=1 << 12, cxl_pages=1 << 12)


@pytest.mark.parametrize("text,nodes", [
    ("all", (0, 1, 2, 3)), ("0-3", (0, 1, 2, 3)), ("0,2", (0, 2)), ("1", (1,)),
    ("!1", (0, 2, 3)), ("!0-1", (2, 3)), ("+0-1", (0, 1)), ("0-1,3", (0, 1, 3)),
    (" 2 - 3 ", (2, 3)), ("+1,3", (1, 3)), ("!all", None)])
def test_node_list_forms(text, nodes):
    if nodes is None:
        with pytest.raises(ValueError, match="selects nothing"):
            parse_nodes(text, four(), "--membind")
    else:
        assert parse_nodes(text, four(), "--membind") == nodes


def test_node_lists_refer_to_memory_nodes_and_reject_bad_ids():
    t = fn.Topology(node_pages=[100, 100, 0], node_cpus=[[0], [1], [2]])
    assert parse_nodes("all", t) == (0, 1)                   # node 2 has no memory
    assert parse_nodes("+1", t) == (1,)
    for bad, msg in (("4", "not on this machine"), ("1-0", "cannot parse"),
                     ("x", "cannot parse"), ("", "empty"), ("+2", "relative id 2")):
        with pytest.raises(ValueError, match=msg):
            parse_nodes(bad, t, "--interleave")


def test_cpu_lists():
    t = four()
    assert parse_cpus("0-3,8", t) == (0, 1, 2, 3, 8)
    assert parse_cpus("!8-31", t) == tuple(range(8))
    assert parse_cpus("+31", t) == (31,)
    with pytest.raises(ValueError, match="32 of"):
        parse_cpus("32", t)


def trace(n_pages=64, cpus=(0,), extra=()):
    """One process; each CPU's thread writes its own n_pages pages, then extra rows."""
    rows = []
    for k, cpu in enumerate(cpus):
        rows += [(BASE + (k * n_pages + p) * 4096, cpu, 1, 10 + k) for p in range(n_pages)]
    cols = {"addr": [r[0] for r in rows], "cpu": [r[1] for r in rows],
            "op": [r[2] for r in rows], "tid": [r[3] for r in rows]}
    t = pa.table({"addr": pa.array(cols["addr"], pa.uint64()),
                  "cpu": pa.array(cols["cpu"], pa.uint16()),
                  "op": pa.array(cols["op"], pa.uint8()),
                  "tid": pa.array(cols["tid"], pa.uint32()),
                  "pid": pa.array([1] * len(rows), pa.uint32())})
    return pa.concat_tables([t, *extra]) if extra else t


def placed(topo, policy, cpus=(0,), **kw):
    sim = fn.Simulator(topo, **kw)
    r = sim.replay(trace(cpus=cpus), task_policy=policy)
    return r.placement[1].tolist(), sim


@pytest.mark.parametrize("policy,expect", [
    (None, [64, 0, 0, 0]), ("default", [64, 0, 0, 0]), ("localalloc", [64, 0, 0, 0]),
    ("interleave:all", [16, 16, 16, 16]), ("interleave:0,2", [32, 0, 32, 0]),
    ("membind:3", [0, 0, 0, 64]), ("membind:!0-2", [0, 0, 0, 64]),
    ("preferred:2", [0, 0, 64, 0]), ("preferred-many:1-2", [0, 64, 0, 0]),
    ("weighted-interleave:0-1", [32, 32, 0, 0]), ("--interleave=+2-3", [0, 0, 32, 32])])
def test_each_policy_flag_is_the_task_policy_of_the_trace(policy, expect):
    got, sim = placed(four(), policy)
    assert got == expect
    mode, nodes = sim.get_mempolicy(10)
    if policy in (None, "default"):
        assert mode == fn.MPOL_DEFAULT
    else:
        assert mode & 0xff == parse_policy(policy, four()).mode


def test_weighted_interleave_uses_the_weights_knob():
    got, _ = placed(four(), "weighted-interleave:0-1", interleave_weights={0: 3, 1: 1})
    assert got == [48, 16, 0, 0]


def test_preferred_on_cxl_and_threads_inherit_the_policy():
    got, sim = placed(cxl(), "preferred:2", cpus=(0, 8))
    assert got == [0, 0, 128]                                  # both threads
    assert sim.get_mempolicy(11)[0] == fn.MPOL_PREFERRED


def test_later_set_mempolicy_in_the_trace_still_applies():
    later = pa.table({"addr": pa.array([0, BASE + 100 * 4096], pa.uint64()),
                      "cpu": pa.array([0, 0], pa.uint16()),
                      "op": pa.array([fn.OP_SET_MEMPOLICY, fn.OP_WRITE], pa.uint8()),
                      "tid": pa.array([10, 10], pa.uint32()),
                      "pid": pa.array([1, 1], pa.uint32()),
                      "mode": pa.array([fn.MPOL_BIND, 0], pa.uint16()),
                      "nodemask": pa.array([1 << 1, 0], pa.uint64())})
    t = pa.concat_tables([trace().append_column("mode", pa.array([0] * 64, pa.uint16()))
                          .append_column("nodemask", pa.array([0] * 64, pa.uint64())),
                          later])
    r = fn.Simulator(four()).replay(t, task_policy="membind:3")
    assert r.placement[1].tolist() == [0, 1, 0, 64]


@pytest.mark.parametrize("spec,msg", [("membind", "needs a node list"),
                                      ("preferred:0-1", "takes one node"),
                                      ("localalloc:1", "takes no node list"),
                                      ("bogus:1", "unknown mode"),
                                      ("membind:7", "not on this machine")])
def test_bad_policies(spec, msg):
    with pytest.raises(ValueError, match=msg):
        parse_policy(spec, four())


def test_cpu_map_modes():
    t = fn.Topology(node_pages=[10, 10], node_cpus=[[0, 2, 4], [1, 3, 5]])  # interleaved ids
    tab = lambda **kw: CpuPlacement(**kw).table(t)[:8].tolist()           # noqa: E731
    U = int(UNMAPPED)
    assert tab(mode="keep") == [0, 1, 2, 3, 4, 5, U, U]
    assert tab(mode="modulo") == [0, 1, 2, 3, 4, 5, 0, 1]
    assert tab(mode="pack") == [0, 2, 4, 1, 3, 5, 0, 2]
    assert tab(mode="spread") == [0, 1, 2, 3, 4, 5, 0, 1]
    assert tab(mode="pack", cpunodebind="1") == [1, 3, 5, 1, 3, 5, 1, 3]
    assert tab(mode="spread", physcpubind="0,2,3") == [0, 3, 2, 0, 3, 2, 0, 3]
    assert tab(mode="keep", cpunodebind="0", physcpubind="0-3") == [0, U, 2, U, U, U, U, U]
    two = fn.Topology.two_socket()
    assert CpuPlacement("spread").table(two)[:4].tolist() == [0, 8, 1, 9]
    assert CpuPlacement("pack").table(two)[:4].tolist() == [0, 1, 2, 3]


def test_cpu_map_file(tmp_path):
    f = tmp_path / "map.txt"
    f.write_text("# trace target\n0 8\n1, 9\n\n5 0\n")
    table = CpuPlacement("file", file=str(f)).table(fn.Topology.two_socket())
    assert table[[0, 1, 5]].tolist() == [8, 9, 0] and table[2] == UNMAPPED
    f.write_text("0 8\n0 9\n")
    with pytest.raises(ValueError, match="map.txt:2: trace CPU 0 mapped twice"):
        CpuPlacement("file", file=str(f)).table(fn.Topology.two_socket())
    f.write_text("0 99\n")
    with pytest.raises(ValueError, match="target CPU 99"):
        CpuPlacement("file", file=str(f)).table(fn.Topology.two_socket())


def test_replay_remaps_cpus_and_names_unmapped_rows():
    # a 16-CPU trace on a 4-CPU box: modulo folds it; keep cannot place CPU 4
    small = fn.Topology.uniform(nodes=2, cpus_per_node=2, pages_per_node=1 << 12)
    cpus = tuple(range(0, 16, 4))
    r = fn.Simulator(small).replay(trace(16, cpus), cpu_map="modulo")
    assert sorted(th["cpu"] for th in r.threads) == [0, 0, 0, 0]
    # spread / pack give CPUs to trace CPUs in order of first appearance
    r = fn.Simulator(small).replay(trace(16, (12, 4, 8, 0)), cpu_map="spread",
                                   batch_rows=7)
    assert [(th["tid"], th["cpu"]) for th in r.threads] == [(10, 0), (11, 2), (12, 1),
                                                           (13, 3)]
    r = fn.Simulator(small).replay(trace(16, (12, 4, 8, 0)), cpu_map="pack")
    assert [th["cpu"] for th in r.threads] == [0, 1, 2, 3]
    r = fn.Simulator(small).replay(trace(16, (0, 1, 2, 3)), cpu_map="spread")
    assert [th["node"] for th in r.threads] == [0, 1, 0, 1]
    assert r.placement[1].tolist() == [32, 32]
    with pytest.raises(TraceError) as e:
        fn.Simulator(small).replay(trace(16, cpus), cpu_map="keep")
    assert (e.value.column, e.value.row, e.value.value) == ("cpu", 16, 4)
    with pytest.raises(ValueError, match="cpu_map 'bogus'"):
        CpuPlacement("bogus")
    assert np.array_equal(CpuPlacement().table(small)[:4], [0, 1, 2, 3])


def test_first_appearance_does_not_depend_on_batches():
    small = fn.Topology.uniform(nodes=2, cpus_per_node=2, pages_per_node=1 << 12)
    rng = np.random.default_rng(3)
    cpus = tuple(int(c) for c in rng.permutation(40)[:9])
    got = {br: [th["cpu"] for th in fn.Simulator(small).replay(
        trace(8, cpus), cpu_map="spread", batch_rows=br).threads] for br in (1, 5, 1000)}
    assert got[1] == got[5] == got[1000] == [0, 2, 1, 3, 0, 2, 1, 3, 0]


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 63), min_size=1), st.booleans(), st.booleans())
def test_node_lists_against_a_set_model(ids, invert, relative):
    """Render a set as numactl would (ranges and singles in a shuffled order), parse it,
    compare with plain set arithmetic."""
    t = fn.Topology.uniform(nodes=64, cpus_per_node=1, pages_per_node=16)
    ids = sorted(ids)
    parts, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    text = ("!" if invert else "") + ("+" if relative else "") + ",".join(reversed(parts))
    want = set(range(64)) - set(ids) if invert else set(ids)
    if not want:
        with pytest.raises(ValueError):
            parse_nodes(text, t)
    else:
        assert parse_nodes(text, t) == tuple(sorted(want))
