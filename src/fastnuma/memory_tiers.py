"""Memory tiers, demotion targets and Linux's zone watermarks (docs/tiering.md §2, §3).

Named after mm/memory-tiers.c, whose rules it reproduces for a machine with one zone per
node: a node's tier comes from its abstract distance (``adistance``), ``node_is_toptier``
from the slowest tier that holds a node with CPUs, and the demotion targets as
``establish_demotion_targets`` computes them. The watermarks follow mm/page_alloc.c
``calculate_min_free_kbytes`` and ``__setup_per_zone_wmarks`` (min, low, high, promo).
Plain Python run once per Topology; the kernels get the results as arrays.
"""
import numbers
from math import isqrt
from .zonelists import find_next_best_node

__all__ = ["MEMTIER_CHUNK_BITS", "MEMTIER_CHUNK_SIZE", "MEMTIER_ADISTANCE_DRAM",
           "MEMTIER_DEFAULT_DAX_ADISTANCE", "DEFAULT_WATERMARK_SCALE_FACTOR",
           "default_adistance", "memtier_id", "build_memory_tiers",
           "establish_demotion_targets", "calculate_min_free_kbytes", "setup_per_zone_wmarks",
           "topology_tiers", "describe_tiers", "gib_pages", "cxl_one_socket",
           "cxl_two_socket"]

MEMTIER_CHUNK_BITS = 7                      # include/linux/memory-tiers.h
MEMTIER_CHUNK_SIZE = 1 << MEMTIER_CHUNK_BITS
MEMTIER_ADISTANCE_DRAM = 4 * MEMTIER_CHUNK_SIZE + MEMTIER_CHUNK_SIZE // 2     # 576
MEMTIER_DEFAULT_DAX_ADISTANCE = MEMTIER_ADISTANCE_DRAM * 5                    # 2880, dax/kmem
MAX_ADISTANCE = (1 << 31) - 1               # adistance is an int in the kernel
DEFAULT_WATERMARK_SCALE_FACTOR = 10         # vm.watermark_scale_factor, 1/10000 of the zone
MAX_WATERMARK_SCALE_FACTOR = 3000           # sysctl range 1..3000
MIN_FREE_KBYTES_MIN, MIN_FREE_KBYTES_MAX = 128, 262144   # calculate_min_free_kbytes clamp
PAGE_KB = 4


def default_adistance(has_memory, has_cpus):
    """Per node: 576 (DRAM) for a node with CPUs, 2880 (a dax/kmem node, the usual way CXL
    memory comes online) for a CPU-less node with memory, -1 for a memoryless node (no
    tier). Linux gives a CPU-less node present at boot 576 as well; pass ``adistance``
    explicitly to model that (docs/tiering.md T2)."""
    return tuple(-1 if not mem else MEMTIER_ADISTANCE_DRAM if cpu
                 else MEMTIER_DEFAULT_DAX_ADISTANCE for mem, cpu in zip(has_memory, has_cpus))


def memtier_id(adist):
    """The tier device id of an abstract distance: round_down(adist, 128) >> 7, i.e.
    /sys/devices/virtual/memory_tiering/memory_tier<id> (find_create_memory_tier)."""
    return adist >> MEMTIER_CHUNK_BITS


def build_memory_tiers(adistance, has_memory):
    """Tiers of the memory nodes: (memtier per node, -1 without memory; tiers as
    ((id, nodes), ...) fastest first). Nodes whose adistances round down to the same
    multiple of 128 share a tier."""
    memtier = tuple(memtier_id(a) if mem else -1 for a, mem in zip(adistance, has_memory))
    ids = sorted({t for t in memtier if t >= 0})
    return memtier, tuple((t, tuple(n for n, m in enumerate(memtier) if m == t)) for t in ids)


def _find_next_best_node(node, used, distance, has_cpus):
    """mm/page_alloc.c find_next_best_node() as establish_demotion_targets calls it
    (zonelists.find_next_best_node, the one implementation): ``used`` (a set) excludes
    everything but the next tier; ``node_load`` is 0 (it only orders equal adjusted
    distances; ties go to the lowest id)."""
    n = len(distance)
    best = find_next_best_node(node, [k in used for k in range(n)], distance, [True] * n,
                               has_cpus, [0] * n)
    if best >= 0:
        used.add(best)
    return best


def establish_demotion_targets(memtier, tiers, distance, has_cpus):
    """mm/memory-tiers.c establish_demotion_targets().

    Returns (preferred, lower_tier_mask, top_tier_adistance): per node the preferred
    demotion targets (the nodes of the next lower tier only, taken in
    find_next_best_node order while their raw SLIT distance equals the first one's; empty
    for the last tier and for nodes without a tier), per node the lower_tier_mask of its
    tier (every memory node of every slower tier: the fallback targets), and the
    ``adistance_start + 127`` of the slowest tier that has a node with CPUs (0 if none,
    the kernel's initial value).
    """
    n = len(memtier)
    order = [t for t, _ in tiers]
    members = dict(tiers)
    preferred = []
    for node in range(n):
        if memtier[node] < 0 or order.index(memtier[node]) == len(order) - 1:
            preferred.append(())
            continue
        nxt = set(members[order[order.index(memtier[node]) + 1]])
        used = {m for m in range(n) if m not in nxt}          # N_MEMORY & ~tier_nodes, and
        best, targets = -1, []                                # memoryless nodes never qualify
        while (target := _find_next_best_node(node, used, distance, has_cpus)) >= 0:
            d = distance[node][target]
            if best not in (-1, d):
                break
            best = d
            targets.append(target)
        preferred.append(tuple(sorted(targets)))
    top = 0
    for t, nodes in reversed(tiers):
        if any(has_cpus[m] for m in nodes):
            top = (t << MEMTIER_CHUNK_BITS) + MEMTIER_CHUNK_SIZE - 1
            break
    below, mask_of = [], {}
    for t, nodes in reversed(tiers):                         # lower_tier_mask: slower tiers
        mask_of[t] = tuple(sorted(below))
        below.extend(nodes)
    lower = tuple(mask_of.get(memtier[m], ()) for m in range(n))
    return tuple(preferred), lower, top


def calculate_min_free_kbytes(node_pages):
    """vm.min_free_kbytes at boot: clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144), with
    lowmem_kbytes = all pages (one ZONE_NORMAL per node, all managed) in KiB."""
    lowmem_kbytes = sum(node_pages) * PAGE_KB
    return min(max(isqrt(lowmem_kbytes * 16), MIN_FREE_KBYTES_MIN), MIN_FREE_KBYTES_MAX)


def _mult_frac(x, numer, denom):
    q, r = divmod(x, denom)
    return q * numer + r * numer // denom


def setup_per_zone_wmarks(node_pages, min_free_kbytes=None,
                          watermark_scale_factor=DEFAULT_WATERMARK_SCALE_FACTOR):
    """mm/page_alloc.c __setup_per_zone_wmarks() for one ZONE_NORMAL per node.

    pages_min = min_free_kbytes >> 2; per node min = pages_min * managed / lowmem_pages,
    tmp = max(min >> 2, managed * watermark_scale_factor / 10000), low = min + tmp,
    high = low + tmp, promo = high + tmp. Returns (min, low, high, promo), tuples of
    pages. ``min_free_kbytes`` None = the boot value (calculate_min_free_kbytes).
    """
    if min_free_kbytes is None:
        min_free_kbytes = calculate_min_free_kbytes(node_pages)
    if not isinstance(min_free_kbytes, int) or isinstance(min_free_kbytes, bool) \
            or min_free_kbytes < 0:
        raise ValueError(f"min_free_kbytes={min_free_kbytes!r}: expected an int >= 0 (KiB)")
    if not isinstance(watermark_scale_factor, int) or isinstance(watermark_scale_factor, bool) \
            or not 1 <= watermark_scale_factor <= MAX_WATERMARK_SCALE_FACTOR:
        raise ValueError(f"watermark_scale_factor={watermark_scale_factor!r}: expected an int "
                         f"1..{MAX_WATERMARK_SCALE_FACTOR}")
    pages_min = min_free_kbytes >> 2
    lowmem = sum(node_pages)
    out = ([], [], [], [])
    for managed in node_pages:
        mn = pages_min * managed // lowmem if lowmem else 0
        tmp = max(mn >> 2, _mult_frac(managed, watermark_scale_factor, 10000))
        for i, v in enumerate((mn, mn + tmp, mn + 2 * tmp, mn + 3 * tmp)):
            out[i].append(v if managed else 0)
    return tuple(tuple(v) for v in out)


def topology_tiers(topo, pages, cpus, distance, wmarks):
    """The tier attributes of a Topology being built (validated ``pages``, ``cpus``,
    ``distance``, ``wmarks`` = (min, low, high)): wmark_promo, adistance, memtier,
    memory_tiers, demotion_preferred, demotion_fallback, top_tier_adistance."""
    from .topology_checks import MAX_PAGES, _check_range, _int_vector
    n = len(pages)
    if topo.wmark_promo is None:
        promo = tuple(hi + (hi - lo) for lo, hi in zip(wmarks[1], wmarks[2]))
    else:
        promo = _int_vector(topo.wmark_promo, "wmark_promo")
        if len(promo) != n:
            raise ValueError(f"wmark_promo has {len(promo)} entries; expected {n} "
                             "(one per node)")
        for node, (hi, p) in enumerate(zip(wmarks[2], promo)):
            _check_range(f"wmark_promo[{node}]", p, hi, MAX_PAGES, " (>= wmark_high)")
    mem, has_cpus = [p > 0 for p in pages], [bool(c) for c in cpus]
    if topo.adistance is None:
        adist = default_adistance(mem, has_cpus)
    else:
        adist = _int_vector(topo.adistance, "adistance")
        if len(adist) != n:
            raise ValueError(f"adistance has {len(adist)} entries; expected {n} "
                             "(one per node)")
        for node, a in enumerate(adist):
            _check_range(f"adistance[{node}]", a, 0, MAX_ADISTANCE)
    memtier, tiers = build_memory_tiers(adist, mem)
    preferred, lower, top = establish_demotion_targets(memtier, tiers, distance, has_cpus)
    return dict(wmark_promo=promo, adistance=adist, memtier=memtier, memory_tiers=tiers,
                demotion_preferred=preferred, demotion_fallback=lower,
                top_tier_adistance=top)


def node_is_toptier(topo, n):
    """Linux node_is_toptier(): no tier (memoryless), or the node's tier starts at or
    above ``top_tier_adistance`` (docs/tiering.md T3)."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(f"node id must be an int, got {n!r} ({type(n).__name__})")
    if not 0 <= n < topo.n_nodes:
        raise ValueError(f"node id {n} is out of range; allowed range is "
                         f"0..{topo.n_nodes - 1}")
    n = int(n)
    return topo.memtier[n] < 0 or (topo.memtier[n] << 7) <= topo.top_tier_adistance


def with_linux_watermarks(topo, min_free_kbytes=None, watermark_scale_factor=10):
    """A copy whose min/low/high/promo watermarks are Linux's (docs/tiering.md §3):
    ``min_free_kbytes`` None = the boot value int_sqrt(lowmem_kbytes * 16) clamped to
    128..262144; ``watermark_scale_factor`` in 1/10000 of the node (1..3000)."""
    wmin, wlow, whigh, wpromo = setup_per_zone_wmarks(
        topo.node_pages, min_free_kbytes, watermark_scale_factor)
    return type(topo)(topo.node_pages, topo.node_cpus, topo.distance, wmin, wlow, whigh,
                      wpromo, topo.adistance)


def describe_tiers(t):
    """Lines of `fastnuma info --topology`: the tiers, then each node."""
    lines = [f"memory_tier{i}: nodes {','.join(map(str, nodes))} "
             f"(adistance {i << 7}..{(i << 7) + 127})" for i, nodes in t.memory_tiers]
    for n in range(t.n_nodes):
        if t.memtier[n] < 0:
            lines.append(f"node {n}: no memory")
            continue
        pref = ",".join(map(str, t.demotion_preferred[n])) or "-"
        fall = ",".join(map(str, t.demotion_fallback[n])) or "-"
        lines.append(
            f"node {n}: adistance {t.adistance[n]} memory_tier{t.memtier[n]} "
            f"toptier={'yes' if t.node_is_toptier(n) else 'no'} demotion preferred "
            f"{pref} fallback {fall}; wmark min {t.wmark_min[n]} low "
            f"{t.wmark_low[n]} high {t.wmark_high[n]} promo {t.wmark_promo[n]}")
    return lines


def gib_pages(gib, name):
    """GiB (int or float, > 0) as 4 KiB pages (the CXL presets' sizes)."""
    if isinstance(gib, bool) or not isinstance(gib, (int, float)) or not 0 < gib <= 2**40:
        raise ValueError(f"{name}={gib!r}: expected a size in GiB > 0")
    return int(gib * (1 << 30)) // 4096


def cxl_one_socket(cls, dram_gib=128, cxl_gib=64, cpus=16):
    """One socket (CPUs 0..cpus-1, node 0, DRAM) and node 1: a CPU-less CXL Type-3
    expander onlined by dax/kmem (adistance 2880, memory_tier22). Default 128 GiB of
    DDR5 plus one 64 GiB expander card (a third of the memory on CXL). SLIT 10/14.
    Watermarks are Linux's (:meth:`with_linux_watermarks`)."""
    from .topology import NR_CPUS_MAX, _check_range     # topology imports this module
    return cls([gib_pages(dram_gib, "dram_gib"), gib_pages(cxl_gib, "cxl_gib")],
               [range(_check_range("cpus", cpus, 1, NR_CPUS_MAX)), ()],
               [[10, 14], [14, 10]]).with_linux_watermarks()


def cxl_two_socket(cls, dram_gib=256, cxl_gib=128, cpus_per_socket=16):
    """Two sockets (nodes 0 and 1, DRAM, CPUs 0..c-1 and c..2c-1) and one CPU-less CXL
    expander per socket (node 2 behind socket 0, node 3 behind socket 1, adistance
    2880). Default 256 GiB DRAM and a 128 GiB card per socket. SLIT: cross-socket 21,
    CXL from its own socket 14, from the other socket 24, between the two cards 34::

        10 21 14 24
        21 10 24 14
        14 24 10 34
        24 14 34 10

    Watermarks are Linux's; each DRAM node demotes to its own socket's card."""
    from .topology import NR_CPUS_MAX, _check_range
    c = _check_range("cpus_per_socket", cpus_per_socket, 1, NR_CPUS_MAX // 2)
    dram, cxl = gib_pages(dram_gib, "dram_gib"), gib_pages(cxl_gib, "cxl_gib")
    slit = [[10, 21, 14, 24], [21, 10, 24, 14], [14, 24, 10, 34], [24, 14, 34, 10]]
    return cls([dram, dram, cxl, cxl], [range(0, c), range(c, 2 * c), (), ()],
               slit).with_linux_watermarks()
