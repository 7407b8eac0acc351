"""Hypothesis strategies shared by the differential tests: topologies and knobs."""
from hypothesis import strategies as st

MAX_NODES = 4


@st.composite
def topology_args(draw, max_nodes=MAX_NODES, max_pages=3000):
    """Keyword arguments of a small Topology: some nodes CPU-less or memoryless, random
    SLIT distances (asymmetric too) and watermarks, capacities small enough to fill."""
    n = draw(st.integers(1, max_nodes))
    node_pages = [draw(st.sampled_from([0, 64, 600, max_pages]) if i else
                       st.sampled_from([64, 600, max_pages])) for i in range(n)]
    cpus, next_cpu = [], 0
    for i in range(n):
        k = draw(st.integers(0 if i else 1, 2))
        cpus.append(list(range(next_cpu, next_cpu + k)))
        next_cpu += k
    distance = [[10 if i == j else draw(st.sampled_from([12, 20, 21, 31]))
                 for j in range(n)] for i in range(n)]
    wmin, wlow, whigh = [], [], []
    for p in node_pages:
        a = draw(st.integers(0, min(p, 8)))
        b = draw(st.integers(a, min(p, 16)))
        wmin.append(a)
        wlow.append(b)
        whigh.append(b)
    return dict(node_pages=node_pages, node_cpus=cpus, distance=distance, wmark_min=wmin,
                wmark_low=wlow, wmark_high=whigh)


def knobs():
    """Simulator keyword arguments."""
    return st.fixed_dictionaries({
        "thp": st.sampled_from(["never", "madvise", "always"]),
        "thp_defrag": st.sampled_from(["madvise", "always", "never"]),
        "zero_page": st.booleans(),
        "linux_strict_flags": st.booleans(),
        "max_map_count": st.sampled_from([5, 8, 65530]),
        "interleave_weights": st.sampled_from([None, {0: 3}, {0: 1, 1: 2}]),
        # debugfs fault_around_bytes: default 16 pages, off, 2 pages, a whole PTE table,
        # and a value fault_around_bytes_set rounds down
        "fault_around_bytes": st.sampled_from([65536, 65536, 4096, 8192, 1 << 21, 100_000]),
    })


def lazy_knobs():
    """Lazy-migration keyword arguments (docs/lazy-migration.md §1): a profile, each switch
    left to it (None) or given, NUMA balancing on or off, scan knobs small enough that
    scans happen within a few simulated seconds (and the 0 edge cases)."""
    def switch(*values):
        return st.one_of(st.none(), st.sampled_from(values))

    return st.fixed_dictionaries({
        "profile": st.sampled_from(["mainline", "seed"]),
        "noop_mode": switch(False, True),
        "pmd_numa_batching": switch(False, True),
        "shared_page_rule": switch(False, True),
        "pte_restore_timing": switch("after", "before"),
        "two_stage_filter": switch("last_cpupid", "last_node"),
        "migrate_rate_limit": switch(False, True),
        "thp_update_count": switch(512, 1),
        "skip_local_single_thread": switch(False, True),
        "interleave_thp_index": switch("order", "base"),
        "numa_balancing": st.sampled_from([0, 1, 1]),
        "numa_balancing_scan_delay_ms": st.sampled_from([0, 10, 100, 1000]),
        "numa_balancing_scan_period_min_ms": st.sampled_from([20, 100, 1000]),
        "numa_balancing_scan_period_max_ms": st.sampled_from([50, 1000, 60000]),
        "numa_balancing_scan_size_mb": st.sampled_from([0, 4, 16, 256]),
    })


def tiering_knobs():
    """Memory-tiering keyword arguments (docs/tiering.md §1): mode 2 or 3 (or 1 with the
    tiering rules), demotion on or off, small thresholds and rate limits so that every
    branch of the promotion decision is reachable in a short program."""
    return st.fixed_dictionaries({
        "numa_balancing": st.sampled_from([1, 2, 2, 3]),
        "memory_tiering": st.just(True),
        "demotion_enabled": st.booleans(),
        "numa_balancing_promote_rate_limit_MBps": st.sampled_from([0, 1, 65536]),
        "numa_balancing_hot_threshold_ms": st.sampled_from([1, 100, 1000]),
        "numa_balancing_scan_delay_ms": st.sampled_from([0, 100]),
        "numa_balancing_scan_period_min_ms": st.sampled_from([20, 100]),
        "numa_balancing_scan_size_mb": st.sampled_from([4, 256]),
        "tiering_profile": st.sampled_from(["6.12", "6.1"]),
        "thp": st.sampled_from(["never", "madvise"]),
    })
