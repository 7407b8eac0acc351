"""The page allocator of the reference model (linux-semantics.md §1.4-§1.7, §6).

A mixin of RefMachine: it reads self.free, self.fallback, self.wmark_*, self.numastat_,
self.memory_nodes, self.cpu_node, self.weights, self.numa_stat.
"""
from fastnuma.constants import (HPAGE_PMD_ORDER, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL,
                                MPOL_PREFERRED, MPOL_PREFERRED_MANY,
                                MPOL_WEIGHTED_INTERLEAVE)

from .policy import (INTERLEAVE_MODES, interleave_nid, interleave_nodes,
                     system_default_policy, weighted_interleave_nid,
                     weighted_interleave_nodes)

NO_INTERLEAVE_INDEX = None


class AllocMixin:
    # ------------------------------------------------------------ §1.7 watermarks
    def zone_watermark_ok(self, node, order, mark):
        """§1.7: the node qualifies when free - (2**order - 1) > mark."""
        return self.free[node] - ((1 << order) - 1) > mark

    def get_page_from_freelist(self, order, zonelist, marks):
        """§1.7: the first node of the (restricted) list that passes the watermark."""
        for node in zonelist:
            if self.zone_watermark_ok(node, order, marks[node]):
                return node
        return None

    def zone_statistics(self, preferred, node, cpu_node, nr_account=1):
        """§6 numa_hit/miss/foreign/local/other (mm/page_alloc.c zone_statistics): hit on
        the serving node when it is the preferred zone's node, else miss there and foreign
        on the preferred node; local/other against the allocating CPU's node."""
        if not self.numa_stat:
            return
        stats = self.numastat_
        if node == preferred:
            stats[node]["numa_hit"] += nr_account
        else:
            stats[node]["numa_miss"] += nr_account
            stats[preferred]["numa_foreign"] += nr_account
        key = "local_node" if node == cpu_node else "other_node"
        stats[node][key] += nr_account

    def alloc_pages_nodemask(self, order, nid, nodemask, cpu_node, thisnode=False):
        """__alloc_pages(order, nid, nodemask) (§1.7): walk nid's fallback list (only nid
        with __GFP_THISNODE) restricted to the nodemask, first against the low watermark,
        then against min. The preferred zone (numa_hit) is the first node of that
        restricted list. Returns the node or None; takes the pages."""
        if thisnode:
            zonelist = [nid] if nid in self.memory_nodes else []
        else:
            zonelist = list(self.fallback[nid])
        if nodemask is not None:
            zonelist = [n for n in zonelist if n in nodemask]
        if not zonelist:
            return None
        node = self.get_page_from_freelist(order, zonelist, self.wmark_low)
        if node is None and self.memory_tiering and order == 0 and not thisnode:
            self.wake_all_kswapds(zonelist)              # docs/tiering.md A2
        if node is None:
            node = self.get_page_from_freelist(order, zonelist, self.wmark_min)
        if node is None and self.memory_tiering and order == 0 and not thisnode:
            self.try_to_free_pages(zonelist)             # D8, then the retry at min
            node = self.get_page_from_freelist(order, zonelist, self.wmark_min)
        if node is None:
            return None
        self.free[node] -= 1 << order
        self.zone_statistics(zonelist[0], node, cpu_node)
        return node

    # ------------------------------------------------------------ §1.4 policies
    def get_task_policy(self, thread):
        """get_task_policy(): the thread's policy, else the system default PREFERRED
        {CPU node} with MOF|MORON (§1.4 step 4)."""
        if thread.policy is not None:
            return thread.policy
        return system_default_policy(self.cpu_node[thread.cpu])

    def get_vma_policy(self, thread, vma, vpn, order):
        """§1.4 + §1.5 (get_vma_policy): the shared tree (shared memory, by page offset) or
        the VMA policy, else the task policy; the interleave index
        ilx = base + (vm_pgoff >> order) + ((addr - vm_start) >> (12 + order)) whenever the
        governing policy is (weighted) interleave, base 0 (also for shared memory: the
        inode base is fastnuma's 0). Returns (policy, ilx); ilx 0 otherwise.
        interleave_thp_index="base" (seed): the index of a THP counts base pages (no
        ``>> order``)."""
        if vma.obj is not None:
            pol = vma.obj.lookup(vma.pgoff_at(vpn))
        else:
            pol = vma.policy
        if pol is None:
            pol = self.get_task_policy(thread)
        ilx = 0
        if pol.mode in INTERLEAVE_MODES:
            shift = self.ilx_shift(order)
            ilx += vma.pgoff >> shift
            ilx += (vpn - vma.start) >> shift
        return pol, ilx

    def ilx_shift(self, order):
        """How an interleave index scales with the folio order: by the order (mainline)
        or not at all (interleave_thp_index="base", the seed)."""
        return order if self.interleave_thp_index == "order" else 0

    # ------------------------------------------------------------ §1.5 node choice
    def policy_nodemask(self, pol, ilx, nid, thread):
        """§1.5 table (policy_nodemask): (start nid, nodemask or None)."""
        local = self.cpu_node[thread.cpu]
        if pol.mode == MPOL_PREFERRED:
            return min(pol.nodes), None
        if pol.mode in (MPOL_PREFERRED_MANY, MPOL_BIND):
            if pol.home_node >= 0:
                nid = pol.home_node
            return nid, pol.nodes
        if pol.mode == MPOL_INTERLEAVE:
            if ilx is NO_INTERLEAVE_INDEX:
                return interleave_nodes(pol, thread), None
            return interleave_nid(pol, ilx, local), None
        if pol.mode == MPOL_WEIGHTED_INTERLEAVE:
            if ilx is NO_INTERLEAVE_INDEX:
                return weighted_interleave_nodes(pol, thread, self.weights), None
            return weighted_interleave_nid(pol, ilx, self.weights, local), None
        assert pol.mode == MPOL_LOCAL, pol
        return nid, None

    def alloc_pages_preferred_many(self, order, nid, nodemask, cpu_node):
        """§1.5 PREFERRED_MANY: first S only (no direct reclaim), then any node from the
        same start nid (alloc_pages_preferred_many)."""
        node = self.alloc_pages_nodemask(order, nid, nodemask, cpu_node)
        if node is None:
            node = self.alloc_pages_nodemask(order, nid, None, cpu_node)
        return node

    def alloc_pages_mpol(self, pol, order, ilx, thread, direct_reclaim=True):
        """§1.5 (alloc_pages_mpol) for the allocating thread: the start node and mask of
        the policy; PREFERRED_MANY's two attempts; THP (order 9 with an index) under a
        non-interleave policy admitting the start node: that node only first, and only
        with direct reclaim the normal fallback after; numa_interleave when an interleave
        allocation lands on its target. Returns the node or None."""
        cpu_node = self.cpu_node[thread.cpu]
        nid, nodemask = self.policy_nodemask(pol, ilx, cpu_node, thread)
        if pol.mode == MPOL_PREFERRED_MANY:
            return self.alloc_pages_preferred_many(order, nid, nodemask, cpu_node)
        if order == HPAGE_PMD_ORDER and ilx is not NO_INTERLEAVE_INDEX:
            if pol.mode not in INTERLEAVE_MODES and (nodemask is None or nid in nodemask):
                node = self.alloc_pages_nodemask(order, nid, None, cpu_node, thisnode=True)
                if node is not None or not direct_reclaim:
                    return node
        node = self.alloc_pages_nodemask(order, nid, nodemask, cpu_node)
        if pol.mode in INTERLEAVE_MODES and node is not None and node == nid \
                and self.numa_stat:
            self.numastat_[node]["interleave_hit"] += 1
        return node

    def free_folio(self, folio):
        """The folio's pages go back to its node."""
        if not folio.freed:
            folio.freed = True
            self.free[folio.node] += folio.nr
