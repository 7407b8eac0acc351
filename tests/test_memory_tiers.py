"""docs/tiering.md §2-§3 on fastnuma.Topology: memory tiers (T1-T6), watermarks (W1-W3),
scenario X1, the CXL presets and `fastnuma info --topology`; and a property test against
the reference (tests/reference/memory_tiers.py)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnuma import Topology
from fastnuma.cli import main
from fastnuma.memory_tiers import calculate_min_free_kbytes, setup_per_zone_wmarks
from tests.reference.memory_tiers import RefTiers, linux_watermarks
from tests.strategies import topology_args

W3 = dict(node_pages=[1 << 20, 1 << 21], node_cpus=[[0, 1], []], distance=[[10, 14], [14, 10]])


def test_x1_tiers_of_the_common_setup():
    t = Topology(**W3)
    assert t.memory_tiers == ((4, (0,)), (22, (1,)))          # memory_tier4, memory_tier22
    assert t.adistance == (576, 2880)
    assert t.node_is_toptier(0) and not t.node_is_toptier(1)
    assert t.demotion_preferred == ((1,), ())
    assert t.demotion_fallback == ((1,), ())                  # lower_tier_mask(tier4) = {1}


def test_x1_variant_cxl_node_present_at_boot_joins_dram():
    t = Topology(**W3, adistance=[576, 576])                   # no adistance provider
    assert t.memory_tiers == ((4, (0, 1)),)
    assert t.node_is_toptier(1) and t.demotion_preferred == ((), ())


def test_w1_w3_linux_watermarks():
    assert calculate_min_free_kbytes([1 << 20, 1 << 21]) == 14188
    t = Topology(**W3).with_linux_watermarks()
    assert (t.wmark_min, t.wmark_low, t.wmark_high, t.wmark_promo) == (
        (1182, 2364), (2230, 4461), (3278, 6558), (4326, 8655))


def test_w1_clamps_and_w2_scale_factor():
    assert calculate_min_free_kbytes([100]) == 128                # tiny machine
    assert calculate_min_free_kbytes([1 << 30]) == 262144         # 4 TiB
    mn, lo, hi, pr = setup_per_zone_wmarks([1 << 20], 16384, 100)  # 1 % steps
    assert (mn, lo, hi, pr) == ((4096,), (14581,), (25066,), (35551,))
    mn, lo, *_ = setup_per_zone_wmarks([1 << 20], 16384 * 16, 1)   # min >> 2 dominates
    assert lo[0] - mn[0] == mn[0] >> 2
    with pytest.raises(ValueError, match="watermark_scale_factor"):
        setup_per_zone_wmarks([1 << 20], None, 0)


def test_wmark_promo_default_and_validation():
    t = Topology([1000], [[0]], wmark_min=[5], wmark_low=[10], wmark_high=[20])
    assert t.wmark_promo == (30,)                              # high + (high - low)
    with pytest.raises(ValueError, match="wmark_promo"):
        Topology([1000], [[0]], wmark_high=[20], wmark_promo=[19])
    with pytest.raises(ValueError, match="adistance"):
        Topology([1000], [[0]], adistance=[-1])


def test_t1_same_chunk_same_tier_and_hbm_is_top_tier():
    # HBM (faster than DRAM), DRAM, a CPU-less node in the DRAM chunk, two CXL devices
    t = Topology([100] * 5, [[0], [1], [], [], []], adistance=[300, 576, 600, 2880, 2900])
    assert t.memory_tiers == ((2, (0,)), (4, (1, 2)), (22, (3, 4)))
    assert [t.node_is_toptier(n) for n in range(5)] == [True, True, True, False, False]
    assert t.top_tier_adistance == 4 * 128 + 127


def test_t3_slowest_cpu_tier_sets_the_top():
    t = Topology([100, 100, 100], [[0], [], [1]], adistance=[576, 1000, 2880])
    assert t.top_tier_adistance == 22 * 128 + 127                 # node 2 has CPUs
    assert all(t.node_is_toptier(n) for n in range(3))
    assert Topology([0, 100], [[0], []]).node_is_toptier(0)     # memoryless: no tier


def test_t4_preferred_next_tier_only_at_min_distance_and_fallback():
    # two sockets, a CXL card per socket, and a far slower pool (third tier)
    slit = [[10, 21, 14, 24, 30], [21, 10, 24, 14, 30], [14, 24, 10, 34, 30],
            [24, 14, 34, 10, 30], [30, 30, 30, 30, 10]]
    t = Topology([100] * 5, [[0], [1], [], [], []], slit, adistance=[576, 576, 2880, 2880,
                                                                      5000])
    assert t.demotion_preferred == ((2,), (3,), (4,), (4,), ())
    assert t.demotion_fallback == ((2, 3, 4), (2, 3, 4), (4,), (4,), ())
    tie = Topology([100] * 3, [[0], [], []], [[10, 17, 17], [17, 10, 20], [17, 20, 10]])
    assert tie.demotion_preferred[0] == (1, 2)                     # ties all included


def test_presets_with_cxl():
    one = Topology.cxl_one_socket()
    assert one.node_pages == (128 << 18, 64 << 18) and one.node_cpus[1] == ()
    assert one.demotion_preferred == ((1,), ()) and one.wmark_promo[0] > one.wmark_high[0]
    assert (one.wmark_min, one.wmark_low) == tuple(
        x for x in setup_per_zone_wmarks(one.node_pages)[:2])
    two = Topology.cxl_two_socket(dram_gib=1, cxl_gib=2, cpus_per_socket=2)
    assert two.memory_tiers == ((4, (0, 1)), (22, (2, 3)))
    assert two.demotion_preferred == ((2,), (3,), (), ())         # each socket its own card
    assert "adistance=(576, 576, 2880, 2880)" in repr(two)
    with pytest.raises(ValueError, match="cxl_gib"):
        Topology.cxl_one_socket(cxl_gib=0)


def test_info_topology_prints_tiers(capsys):
    assert main(["info", "--topology", "cxl_two_socket"]) in (0, None)
    out = capsys.readouterr().out
    assert "memory_tier4: nodes 0,1" in out and "memory_tier22: nodes 2,3" in out
    assert "node 0: adistance 576 memory_tier4 toptier=yes demotion preferred 2" in out


@settings(max_examples=60, deadline=None)
@given(topology_args(max_nodes=5), st.lists(st.sampled_from([300, 576, 700, 2880, 5000]),
                                            min_size=5, max_size=5),
       st.integers(0, 300000), st.integers(1, 3000))
def test_tiers_and_watermarks_match_the_reference(targs, adists, mfk, wsf):
    n = len(targs["node_pages"])
    t = Topology(**targs, adistance=adists[:n])
    ref = RefTiers(targs["node_pages"], targs["node_cpus"], targs["distance"], adists[:n])
    assert [n for _, ns in t.memory_tiers for n in ns] == \
        [n for _, ns in ref.tiers for n in ns]
    for node in range(n):
        assert t.node_is_toptier(node) == ref.node_is_toptier(node)
        if node in ref.tier:
            assert list(t.demotion_preferred[node]) == ref.preferred[node]
            assert list(t.demotion_fallback[node]) == ref.lower[node]
    assert setup_per_zone_wmarks(targs["node_pages"], mfk, wsf) == \
        linux_watermarks(targs["node_pages"], mfk, wsf)
    assert setup_per_zone_wmarks(targs["node_pages"]) == linux_watermarks(targs["node_pages"])
