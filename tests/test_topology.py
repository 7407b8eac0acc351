"""Topology: validation, presets, parsers and the Linux zonelist fallback order (§1.6).

Expected fallback lists are worked out by hand from mm/page_alloc.c find_next_best_node():
val(N, n) = (distance[N][n] + [n < N] + [n has CPUs]) * 1024 + node_load[n], minimum wins,
ties to the lowest id; build_zonelists() adds 1 to node_load of the first node of each new
distance group, and node_load is shared by the whole pass over nodes 0, 1, 2, ...
"""
import dataclasses
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

try:
    import fastnuma  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fastnuma.topology import Topology  # noqa: E402


# ------------------------------------------------------------------ presets
def test_presets_shapes():
    t = Topology.uniform()
    assert (t.n_nodes, t.n_cpus, t.cpu_node) == (2, 4, (0, 0, 1, 1))
    assert t.node_pages == (1 << 18, 1 << 18)
    assert t.distance == ((10, 20), (20, 10))

    t = Topology.two_socket()
    assert (t.n_nodes, t.n_cpus) == (2, 16)
    assert t.cpu_node == (0,) * 8 + (1,) * 8
    assert t.distance == ((10, 21), (21, 10))
    assert t.node_pages == (1 << 20, 1 << 20)

    t = Topology.four_socket(pages_per_node=1000)
    assert (t.n_nodes, t.n_cpus) == (4, 32)
    assert t.node_cpus[3] == tuple(range(24, 32))
    assert t.distance[0] == (10, 21, 31, 21) and t.distance[1] == (21, 10, 21, 31)
    assert {d for row in t.distance for d in row} == {10, 21, 31}
    assert all(t.distance[i][j] == t.distance[j][i] for i in range(4) for j in range(4))

    t = Topology.cxl(pages_per_node=100, cxl_pages=50)
    assert (t.n_nodes, t.n_cpus) == (3, 16)
    assert t.node_pages == (100, 100, 50) and t.node_cpus[2] == ()
    assert [t.has_cpus(n) for n in range(3)] == [True, True, False]
    assert t.memory_nodes() == (0, 1, 2)
    assert t.distance == ((10, 21, 14), (21, 10, 24), (14, 24, 10))


def test_preset_fallback_lists():
    assert Topology.uniform().fallback == ((0, 1), (1, 0))
    assert Topology.two_socket().fallback == ((0, 1), (1, 0))
    # ring: N0 ties 1 and 3 at 21 -> lower id 1 (load[1]=1), then 3, then 2 (load[2]=1);
    # N1: 2 = 22*1024+1 beats 0 = 23*1024 (n < N penalty) -> 2 (load 2), 0, 3 (load[3]=1);
    # N2: 3 = 22*1024+1 < 1 = 23*1024+1 -> 3 (load 2), 1, 0 (load[0]=1);
    # N3: 0 = 23*1024+1 < 2 = 23*1024+2 -> 0, 2, 1.
    assert Topology.four_socket().fallback == ((0, 1, 3, 2), (1, 2, 0, 3),
                                               (2, 3, 1, 0), (3, 0, 2, 1))
    # N0: CXL at 14 first; N1: 0 = 23*1024 < 2 = 24*1024+1; N2 (has memory): itself, 0, 1.
    assert Topology.cxl().fallback == ((0, 2, 1), (1, 0, 2), (2, 0, 1))


def test_preset_argument_errors():
    with pytest.raises(ValueError, match="nodes = 0"):
        Topology.uniform(nodes=0)
    with pytest.raises(ValueError, match="nodes = 65.*1..64"):
        Topology.uniform(nodes=65)
    with pytest.raises(ValueError, match="cpus_per_node = 0"):
        Topology.uniform(cpus_per_node=0)
    with pytest.raises(TypeError, match="2.0"):
        Topology.uniform(nodes=2.0)
    with pytest.raises(ValueError, match="-1"):
        Topology.two_socket(pages_per_node=-1)


# ------------------------------------------------------------------ fallback rule
def test_fallback_uniform_four_nodes_round_robin():
    t = Topology.uniform(nodes=4, cpus_per_node=1)
    # N0: all at 21*1024 -> 1 (load[1]=1), then 2, 3.
    # N1: 0 = 22*1024 (0 < 1), 2 = 3 = 21*1024 -> 2 (load[2]=1), then 3, 0.
    # N2: 3 = 21*1024 -> 3 (load[3]=1); 0 = 22*1024 < 1 = 22*1024+1 -> 0, then 1.
    # N3: 0 = 22*1024 < 1 = 2 = 22*1024+1 -> 0 (load[0]=1), then 1, 2.
    assert t.fallback == ((0, 1, 2, 3), (1, 2, 3, 0), (2, 3, 0, 1), (3, 0, 1, 2))
    assert [t.local_memory_node(n) for n in range(4)] == [0, 1, 2, 3]


def test_fallback_asymmetric_slit_uses_the_source_row():
    # Cyclic SLIT: from 0, node 1 is near (20) but node 2 is far (30); the columns say the
    # opposite, so reading distance[n][N] would put 2 first for node 0.
    slit = [[10, 20, 30], [30, 10, 20], [20, 30, 10]]
    t = Topology([1, 1, 1], [[0], [1], [2]], slit)
    assert t.fallback == ((0, 1, 2), (1, 2, 0), (2, 0, 1))


def test_fallback_memoryless_node():
    t = Topology([100, 0, 100], [[0], [1], [2]])
    # N1 has no memory, so it does not come first: 0 = (20+1+1)*1024, 2 = 21*1024+1 -> 2.
    assert t.fallback == ((0, 2), (2, 0), (2, 0))
    assert t.local_memory_node(1) == 2
    assert t.memory_nodes() == (0, 2)
    assert not t.has_memory(1) and t.has_cpus(1)


def test_fallback_memoryless_node_after_distance_change():
    # Node 0 is memoryless; from it node 2 (15) is nearer than node 1 (25).
    slit = [[10, 25, 15], [25, 10, 30], [15, 30, 10]]
    t = Topology([0, 10, 10], [[0], [1], [2]], slit)
    assert t.fallback == ((2, 1), (1, 2), (2, 1))
    assert t.local_memory_node(0) == 2


def test_fallback_cpuless_node_wins_a_distance_tie():
    # PENALTY_FOR_NODE_WITH_CPUS penalises nodes WITH CPUs: the CPU-less node 2 at the same
    # distance 20 (val 20*1024) beats node 1 (21*1024) and node 0 (22*1024 from node 1).
    t = Topology([10, 10, 10], [[0], [1], []])
    assert t.fallback == ((0, 2, 1), (1, 2, 0), (2, 0, 1))


def test_fallback_cpuless_node_that_is_farther():
    # CXL node at 21 from node 0 (val 21*1024) ties node 1 at 20 (20+1 CPU penalty):
    # node_load decides (both 0) -> lower id 1 first.
    t = Topology([10, 10, 10], [[0], [1], []], [[10, 20, 21], [20, 10, 30], [21, 30, 10]])
    assert t.fallback[0] == (0, 1, 2)


def test_fallback_ties():
    slit = [[10, 20, 21], [20, 10, 21], [21, 21, 10]]
    t = Topology([1, 1, 1], [[0], [1], [2]], slit)
    # N0: 1 = 21*1024 -> 1 (load[1]=1), 2 (load[2]=1).
    # N1: 0 = (20+1+1)*1024+0 ties 2 = (21+0+1)*1024+1 on distance; load picks 0 (load[0]=1).
    # N2: 0 = 23*1024+1 and 1 = 23*1024+1: a full tie -> lowest id 0.
    assert t.fallback == ((0, 1, 2), (1, 0, 2), (2, 0, 1))


def test_fallback_without_any_memory():
    t = Topology([0, 0], [[0], [1]])
    assert t.fallback == ((), ())
    assert t.local_memory_node(0) == -1 and t.memory_nodes() == ()


def test_fallback_single_node():
    t = Topology([5], [[0, 1]])
    assert t.fallback == ((0,),) and t.n_cpus == 2


# ------------------------------------------------------------------ normalisation
def test_numpy_inputs_are_normalised_to_python_ints():
    t = Topology(np.array([4, 8], dtype=np.uint32), [np.array([2, 0]), (np.int64(1),)],
                 np.array([[10, 30], [30, 10]]), wmark_min=np.array([1, 1]),
                 wmark_low=[np.int16(2), 2], wmark_high=(3, 3))
    assert t.node_pages == (4, 8) and type(t.node_pages[0]) is int
    assert t.node_cpus == ((0, 2), (1,)) and type(t.node_cpus[0][0]) is int
    assert type(t.distance[0][1]) is int and t.wmark_low == (2, 2)
    assert t.cpu_node == (0, 1, 0)
    same = Topology([4, 8], [[0, 2], [1]], [[10, 30], [30, 10]], [1, 1], [2, 2], [3, 3])
    assert t == same and hash(t) == hash(same)
    assert pickle.loads(pickle.dumps(t)) == t
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.node_pages = (1, 1)


def test_cpu_gaps_and_queries():
    t = Topology([1, 1], [[0, 4], [2]])
    assert t.n_cpus == 5 and t.cpu_node == (0, -1, 1, -1, 0)
    assert t.has_memory(1) and not t.has_memory(7) and not t.has_cpus(7)
    with pytest.raises(ValueError, match="-1"):
        t.has_memory(-1)
    with pytest.raises(TypeError, match="'0'"):
        t.has_cpus("0")
    with pytest.raises(ValueError, match="node id 2 .*0..1"):
        t.local_memory_node(2)


def test_to_kernel_args():
    t = Topology([100, 0, 50], [[0, 1], [3], []], wmark_min=[1, 0, 2], wmark_low=[2, 0, 3],
                 wmark_high=[3, 0, 4])
    a = t.to_kernel_args()
    assert set(a) == {"cpu_node", "fallback", "node_pages", "wmark_min", "wmark_low",
                      "wmark_high", "distance"}
    assert a["cpu_node"].dtype == np.int16 and a["cpu_node"].tolist() == [0, 0, -1, 1]
    assert a["fallback"].dtype == np.int16 and a["fallback"].shape == (3, 3)
    assert a["fallback"].tolist() == [[0, 2, -1], [2, 0, -1], [2, 0, -1]]
    for name in ("node_pages", "wmark_min", "wmark_low", "wmark_high"):
        assert a[name].dtype == np.int64 and a[name].shape == (3,)
    assert a["wmark_high"].tolist() == [3, 0, 4]
    assert a["distance"].dtype == np.int32 and a["distance"].shape == (3, 3)
    a["node_pages"][0] = 0                       # fresh arrays: the topology is unchanged
    assert t.to_kernel_args()["node_pages"][0] == 100


# ------------------------------------------------------------------ validation
GOOD = dict(node_pages=[100, 100], node_cpus=[[0], [1]])


@pytest.mark.parametrize("change, exc, text", [
    (dict(node_pages=[], node_cpus=[]), ValueError, "0 nodes; allowed range is 1..64"),
    (dict(node_pages=[1] * 65, node_cpus=[[i] for i in range(65)]), ValueError, "65 nodes"),
    (dict(node_pages=[100, -5]), ValueError, r"node_pages\[1\] = -5 .*0..9223372036854775807"),
    (dict(node_pages=[100, 2**63]), ValueError, str(2**63)),
    (dict(node_pages=[100, 1.5]), TypeError, "1.5"),
    (dict(node_pages=[100, True]), TypeError, "True"),
    (dict(node_pages=np.array([1.0, 2.0])), TypeError, "float64"),
    (dict(node_pages="12"), TypeError, "str"),
    (dict(node_cpus=[[0]]), ValueError, "node_cpus has 1 entries but node_pages has 2"),
    (dict(node_cpus=[[0, 1], [1]]), ValueError, "CPU 1 is listed on node 0 and again on node 1"),
    (dict(node_cpus=[[0, 0], [1]]), ValueError, "CPU 0 is listed on node 0 and again on node 0"),
    (dict(node_cpus=[[-1], [1]]), ValueError, "= -1; allowed range is 0..8191"),
    (dict(node_cpus=[[8192], [1]]), ValueError, "= 8192; allowed range is 0..8191"),
    (dict(node_cpus=[[], []]), ValueError, "at least one CPU"),
    (dict(node_cpus=["01", [1]]), TypeError, "str"),
    (dict(node_cpus=[[0.0], [1]]), TypeError, "0.0"),
    (dict(distance=[[10, 20]]), ValueError, "distance has 1 rows; expected an n x n .* n = 2"),
    (dict(distance=[[10, 20], [20]]), ValueError, r"distance\[1\] has 1 entries; expected 2"),
    (dict(distance=np.array([10, 20])), ValueError, r"shape \(2,\)"),
    (dict(distance=[[12, 20], [20, 10]]), ValueError, r"distance\[0\]\[0\] = 12; .* must be 10"),
    (dict(distance=[[10, 10], [20, 10]]), ValueError, r"distance\[0\]\[1\] = 10; .*11..255"),
    (dict(distance=[[10, 20], [256, 10]]), ValueError, r"distance\[1\]\[0\] = 256"),
    (dict(distance=[[10, 20.0], [20, 10]]), TypeError, "20.0"),
    (dict(wmark_min=[1]), ValueError, "wmark_min has 1 entries; expected 2"),
    (dict(wmark_min=[5, 0], wmark_low=[3, 0], wmark_high=[7, 0]), ValueError,
     "node 0: .*wmark_min=5 wmark_low=3 wmark_high=7 node_pages=100"),
    (dict(wmark_high=[0, 200]), ValueError, "node 1: .*wmark_low=0 wmark_high=200 node_pages=100"),
    (dict(wmark_min=[-1, 0]), ValueError, "wmark_min=-1"),
    (dict(wmark_low=[0, 1.0]), TypeError, "1.0"),
])
def test_validation_errors(change, exc, text):
    with pytest.raises(exc, match=text):
        Topology(**{**GOOD, **change})


def test_largest_valid_values_are_accepted():
    t = Topology([2**63 - 1, 0], [[8191], []], [[10, 255], [11, 10]],
                 wmark_min=[1, 0], wmark_low=[1, 0], wmark_high=[2**63 - 1, 0])
    assert t.n_cpus == 8192 and t.fallback == ((0,), (0,))
    assert Topology.uniform(nodes=64, cpus_per_node=1).n_nodes == 64


# ------------------------------------------------------------------ numactl
NUMACTL_2 = """\
available: 2 nodes (0-1)
node 0 cpus: 0 1 2 3 4 5 6 7 8 9 10 11 24 25 26 27 28 29 30 31 32 33 34 35
node 0 size: 64133 MB
node 0 free: 58321 MB
node 1 cpus: 12 13 14 15 16 17 18 19 20 21 22 23 36 37 38 39 40 41 42 43 44 45 46 47
node 1 size: 64507 MB
node 1 free: 61034 MB
node distances:
node   0   1 
  0:  10  21 
  1:  21  10 
"""

# Two sockets, each with a CPU-less CXL memory node (nodes 2 and 3).
NUMACTL_4 = """\
available: 4 nodes (0-3)
node 0 cpus: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
node 0 size: 257655 MB
node 0 free: 250113 MB
node 1 cpus: 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
node 1 size: 258041 MB
node 1 free: 255007 MB
node 2 cpus:
node 2 size: 131072 MB
node 2 free: 131040 MB
node 3 cpus:
node 3 size: 131072 MB
node 3 free: 131050 MB
node distances:
node   0   1   2   3 
  0:  10  21  14  24 
  1:  21  10  24  14 
  2:  14  24  10  26 
  3:  24  14  26  10 
"""


def test_from_numactl_two_nodes():
    t = Topology.from_numactl(NUMACTL_2)
    assert t.node_pages == (64133 * 256, 64507 * 256)
    assert t.node_cpus[0] == tuple(range(12)) + tuple(range(24, 36))
    assert t.n_cpus == 48 and t.cpu_node[12] == 1 and t.cpu_node[35] == 0
    assert t.distance == ((10, 21), (21, 10))
    assert t.fallback == ((0, 1), (1, 0))


def test_from_numactl_four_nodes_with_cpuless_nodes():
    t = Topology.from_numactl(NUMACTL_4)
    assert t.node_cpus[2] == () and t.node_cpus[3] == ()
    assert t.node_pages[2] == 131072 * 256
    assert t.distance[2] == (14, 24, 10, 26)
    # N0: 2 (14*1024), then 1 (22*1024) before 3 (24*1024)           load -> [0,1,1,1]
    # N1: 3 (14*1024+1), 0 (23*1024) before 2 (24*1024+1)             load -> [1,1,2,2]
    # N2: 0 (16*1024+1); 1 = (24+1+1)*1024+1 beats 3 = 26*1024+2      load -> [2,2,2,3]
    # N3: 1 (16*1024+2), 0 (26*1024+2) before 2 (27*1024+2)
    assert t.fallback == ((0, 2, 1, 3), (1, 3, 0, 2), (2, 0, 1, 3), (3, 1, 0, 2))


def test_from_numactl_non_contiguous_ids_and_units():
    text = """available: 2 nodes (0,2)
node 0 cpus: 0 1
node 0 size: 4 GB
node 0 free: 1 GB
node 2 cpus: 2 3
node 2 size: 8192 kB
node distances:
node   0   2
  0:  10  20
  2:  20  10
"""
    t = Topology.from_numactl(text)
    assert t.n_nodes == 3 and t.node_pages == (4 << 18, 0, 2048)
    assert t.node_cpus == ((0, 1), (), (2, 3))
    assert t.distance == ((10, 255, 20), (255, 10, 255), (20, 255, 10))
    assert t.fallback == ((0, 2), (2, 0), (2, 0))


def test_from_numactl_without_distances():
    text = ("available: 1 nodes (0)\nnode 0 cpus: 0\nnode 0 size: <not available>\n"
            "node 0 free: <not available>\nNo distance information available.\n")
    t = Topology.from_numactl(text)
    assert t.node_pages == (0,) and t.distance == ((10,),)


@pytest.mark.parametrize("text, message", [
    ("available: 1 nodes (0)\nnode 0 cpus: 0\nthis is not numactl\n",
     "line 3 'this is not numactl'"),
    ("available: 3 nodes (0-1)\n", "line 1 .*says 3 nodes but lists 2"),
    ("available: 1 nodes (0)\nnode 0 cpus: 0\n", "no 'node 0 size:' line"),
    ("available: 1 nodes (0)\nnode 0 size: 1 MB\n", "no 'node 0 cpus:' line"),
    ("available: 1 nodes (0)\nnode 5 cpus: 0\n", "line 2 .*node 5 is not among"),
    ("available: 1 nodes (0)\nnode 0 cpus: 0 x\n", "line 2 .*'0 x'"),
    ("available: 1 nodes (0)\nnode 0 cpus: 0\nnode 0 size: 12 XB\n", "line 3 .*'12 XB'"),
    ("available: 1 nodes (0)\nnode 0 cpus: 0\nnode 0 cpus: 1\n", "line 3 .*described twice"),
    ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 1 MB\nnode 1 cpus: 1\n"
     "node 1 size: 1 MB\nnode distances:\nnode 0 1\n0: 10 21\n1: 21\n", "line 9 .*2 distances"),
    ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 1 MB\nnode 1 cpus: 1\n"
     "node 1 size: 1 MB\nnode distances:\nnode 0 1\n0: 10 21\n", "incomplete: 2 of 4"),
    ("node 0 cpus: 0\n", "line 1 .*comes before the 'available: N nodes"),
    ("", "no 'available: N nodes"),
])
def test_from_numactl_errors(text, message):
    with pytest.raises(ValueError, match=message):
        Topology.from_numactl(text)


def test_from_numactl_rejects_bytes_and_bad_slit():
    with pytest.raises(TypeError, match="bytes"):
        Topology.from_numactl(NUMACTL_2.encode())
    with pytest.raises(ValueError, match=r"distance\[0\]\[1\] = 10"):
        Topology.from_numactl(NUMACTL_2.replace("0:  10  21", "0:  10  10"))


# ------------------------------------------------------------------ sysfs
def make_sysfs(root, nodes):
    """nodes: {id: (cpulist, MemTotal kB, distance line)}, plus files real sysfs has."""
    root.mkdir(exist_ok=True)
    for name in ("online", "possible", "has_cpu", "has_memory"):
        (root / name).write_text("0-2\n")
    (root / "power").mkdir(exist_ok=True)
    for node, (cpulist, kb, distance) in nodes.items():
        d = root / f"node{node}"
        d.mkdir()
        (d / "cpulist").write_text(cpulist + "\n")
        (d / "meminfo").write_text(f"Node {node} MemTotal:       {kb} kB\n"
                                   f"Node {node} MemFree:        {kb // 2} kB\n"
                                   f"Node {node} MemUsed:        {kb - kb // 2} kB\n")
        (d / "distance").write_text(distance + "\n")
    return root


def test_from_sysfs(tmp_path):
    root = make_sysfs(tmp_path / "node", {0: ("0-3,8-11", 16305568, "10 21 14"),
                                          1: ("4-7,12-15", 16512000, "21 10 24"),
                                          2: ("", 8388608, "14 24 10")})
    t = Topology.from_sysfs(root)
    assert t.node_pages == (16305568 // 4, 16512000 // 4, 8388608 // 4)
    assert t.node_cpus == ((0, 1, 2, 3, 8, 9, 10, 11), (4, 5, 6, 7, 12, 13, 14, 15), ())
    assert t.distance == ((10, 21, 14), (21, 10, 24), (14, 24, 10))
    assert t.fallback == Topology.cxl().fallback == ((0, 2, 1), (1, 0, 2), (2, 0, 1))
    assert Topology.from_sysfs(str(root)) == t


def test_from_sysfs_gap_in_node_ids(tmp_path):
    root = make_sysfs(tmp_path / "node", {0: ("0", 4096, "10 20"), 2: ("1", 4096, "20 10")})
    t = Topology.from_sysfs(root)
    assert t.n_nodes == 3 and t.node_pages == (1024, 0, 1024)
    assert t.distance[0] == (10, 255, 20)


@pytest.mark.parametrize("nodes, file, message", [
    ({0: ("0-a", 4, "10")}, "node0/cpulist", "cannot parse '0-a'"),
    ({0: ("3-1", 4, "10")}, "node0/cpulist", "cannot parse '3-1'"),
    ({0: ("0", 4, "10"), 1: ("1", 4, "10")}, "node0/distance", "1 distances for 2 nodes"),
    ({0: ("0", 4, "10 x")}, "node0/distance", "'10 x'"),
])
def test_from_sysfs_errors(tmp_path, nodes, file, message):
    root = make_sysfs(tmp_path / "node", nodes)
    with pytest.raises(ValueError, match=message) as info:
        Topology.from_sysfs(root)
    assert str(root / file) in str(info.value)


def test_from_sysfs_missing_pieces(tmp_path):
    root = make_sysfs(tmp_path / "node", {0: ("0", 4, "10")})
    (root / "node0" / "meminfo").write_text("Node 0 MemFree: 4 kB\n")
    with pytest.raises(ValueError, match="meminfo: no 'Node 0 MemTotal"):
        Topology.from_sysfs(root)
    (root / "node0" / "meminfo").unlink()
    with pytest.raises(FileNotFoundError, match="meminfo"):
        Topology.from_sysfs(root)
    with pytest.raises(ValueError, match="no node<N> directories"):
        Topology.from_sysfs(tmp_path)
    with pytest.raises(FileNotFoundError):
        Topology.from_sysfs(tmp_path / "absent")


# ------------------------------------------------------------------ property
@st.composite
def machines(draw):
    n = draw(st.integers(1, 8))
    values = st.sampled_from([11, 12, 14, 16, 20, 21, 24, 31, 32, 255])
    upper = {(i, j): draw(values) for i in range(n) for j in range(i + 1, n)}
    slit = [[10 if i == j else upper[min(i, j), max(i, j)] for j in range(n)]
            for i in range(n)]
    pages = draw(st.lists(st.sampled_from([0, 1, 1000]), min_size=n, max_size=n))
    with_cpus = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    with_cpus[draw(st.integers(0, n - 1))] = True
    return Topology(pages, [[i] if c else [] for i, c in enumerate(with_cpus)], slit)


@settings(max_examples=300, deadline=None)
@given(t=machines())
def test_every_memory_node_once_in_every_list(t):
    memory = t.memory_nodes()
    for node, lst in enumerate(t.fallback):
        assert sorted(lst) == list(memory)           # each memory node exactly once, no others
        if t.has_memory(node):
            assert lst[0] == node == t.local_memory_node(node)
        else:
            assert node not in lst
        foreign = [m for m in lst if m != node]
        if foreign:
            # the first foreign node is a nearest one, up to the [n < N] and CPU tie terms
            nearest = min(t.distance[node][m] for m in foreign)
            assert t.distance[node][foreign[0]] <= nearest + 2
