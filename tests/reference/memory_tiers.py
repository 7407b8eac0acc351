"""Reference memory tiers, demotion targets and watermarks (docs/tiering.md §2-§3),
written from mm/memory-tiers.c and mm/page_alloc.c independently of fastnuma.memory_tiers.
"""
DRAM_ADIST = 4 * 128 + 64          # MEMTIER_ADISTANCE_DRAM
KMEM_ADIST = 5 * DRAM_ADIST        # MEMTIER_DEFAULT_DAX_ADISTANCE


def int_sqrt(x):
    """lib/math/int_sqrt.c: floor(sqrt(x)) by bisection (no math.isqrt here)."""
    lo, hi = 0, x + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid * mid <= x:
            lo = mid
        else:
            hi = mid
    return lo


def linux_watermarks(node_pages, min_free_kbytes=None, watermark_scale_factor=10):
    """(min, low, high, promo) per node, one ZONE_NORMAL per node."""
    lowmem = sum(node_pages)
    if min_free_kbytes is None:
        min_free_kbytes = max(128, min(262144, int_sqrt(lowmem * 4 * 16)))
    pages_min = min_free_kbytes // 4
    marks = []
    for managed in node_pages:
        if not managed:
            marks.append((0, 0, 0, 0))
            continue
        mn = pages_min * managed // lowmem
        tmp = max(mn // 4, managed * watermark_scale_factor // 10000)
        marks.append((mn, mn + tmp, mn + 2 * tmp, mn + 3 * tmp))
    return tuple(tuple(m[i] for m in marks) for i in range(4))


class RefTiers:
    """Tiers of a machine: ``adist`` per node (None -> 576 with CPUs, 2880 without),
    memoryless nodes have no tier."""

    def __init__(self, pages, cpus, dist, adist=None):
        n = len(pages)
        if adist is None:
            adist = [DRAM_ADIST if cpus[i] else KMEM_ADIST for i in range(n)]
        self.adist = list(adist)
        self.tier = {i: self.adist[i] // 128 * 128 for i in range(n) if pages[i] > 0}
        starts = sorted(set(self.tier.values()))
        self.tiers = [(s, sorted(i for i in self.tier if self.tier[i] == s)) for s in starts]
        top = 0
        for s, nodes in self.tiers:
            if any(cpus[i] for i in nodes):
                top = s + 127                      # the slowest tier with a CPU node wins
        self.top_tier_adistance = top
        self.preferred, self.lower = {}, {}
        for k, (s, nodes) in enumerate(self.tiers):
            below = sorted(i for _, ns in self.tiers[k + 1:] for i in ns)
            for node in nodes:
                self.lower[node] = below
                self.preferred[node] = self._preferred(node, self.tiers[k + 1][1]
                                                       if k + 1 < len(self.tiers) else [],
                                                       cpus, dist)

    @staticmethod
    def _preferred(node, cand, cpus, dist):
        """Candidates sorted by find_next_best_node's adjusted distance (ties: lowest id);
        keep the prefix whose raw distance equals the first candidate's."""
        ranked = sorted(cand, key=lambda m: (dist[node][m] + (m < node) + bool(cpus[m]), m))
        out = []
        for m in ranked:
            if out and dist[node][m] != dist[node][out[0]]:
                break
            out.append(m)
        return sorted(out)

    def node_is_toptier(self, node):
        return node not in self.tier or self.tier[node] <= self.top_tier_adistance

    def next_demotion_nodes(self, node):
        return self.preferred.get(node, [])
