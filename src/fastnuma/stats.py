"""Observation (mm/vmstat.c, drivers/base/node.c, fs/proc/task_mmu.c): vmstat, numastat,
numa_maps, page nodes and flags, free pages, the placement of every process. None of
them changes the machine."""
from __future__ import annotations

import errno

import numpy as np

from .constants import PAGE_SHIFT, PAGE_SIZE
from .dtypes import NUMASTAT_NAMES, NUMASTAT_VMSTAT_NAMES, PTRS_PER_PMD_SHIFT, VMSTAT_NAMES
from .errors import raise_errno
from .kernels.range import numa_maps_stats, page_flags, page_nodes
from .policy import as_int


class Stats:
    """Counters and views of the simulated machine; none of them changes it."""

    def __init__(self, machine, mm):
        self.m = machine
        self.mm = mm

    def vmstat(self):
        """/proc/vmstat counters (Linux names); numa_* allocation counters sum every node."""
        out = dict(zip(NUMASTAT_VMSTAT_NAMES, (int(x) for x in self.m.node_stats.sum(0))))
        out.update(zip(VMSTAT_NAMES, (int(x) for x in self.m.vm)))
        return out

    def numastat(self):
        """{node: {numa_hit, numa_miss, numa_foreign, interleave_hit, local_node,
        other_node}}: /sys/devices/system/node/nodeN/numastat."""
        return {n: dict(zip(NUMASTAT_NAMES, (int(x) for x in row)))
                for n, row in enumerate(self.m.node_stats)}

    def free_pages(self):
        """Free base pages per node."""
        return self.m.free.copy()

    def page_nodes(self, pid, addr, length):
        """Node of every page in [addr, addr+length): -1 where nothing is mapped; a page
        mapping the shared zero page reads as node 0 (where that page lives)."""
        proc = self.m.proc(pid)
        lo, hi = self.mm.user_range(addr, _query_length(length), allow_zero=True)
        out = np.empty(hi - lo, np.int16)
        page_nodes(self.m.st, self.m.pt.blocks_of(proc.asid, lo, hi), lo, hi, out)
        return out

    def page_flags(self, pid, addr, length):
        """PTE flag bits of every page in [addr, addr+length) (``fastnuma.dtypes.PTE_*``:
        present, numa (PROT_NONE for a hinting fault), write, huge, zero, dirty); 0 where
        nothing is mapped."""
        proc = self.m.proc(pid)
        lo, hi = self.mm.user_range(addr, _query_length(length), allow_zero=True)
        out = np.empty(hi - lo, np.int64)
        page_flags(self.m.st, self.m.pt.blocks_of(proc.asid, lo, hi), lo, hi, out)
        return out

    def numa_maps(self, pid):
        """Text of /proc/PID/numa_maps (show_numa_map): one line per VMA."""
        return self.numa_maps_placed(pid)[0]

    def numa_maps_placed(self, pid):
        """numa_maps(pid), and the pages mapped per node over all its VMAs (a replay
        report's placement row): every present PTE lies in a VMA, so one walk of the
        page table gives both (two walks were 3.7 ms of a replay of 1M pages)."""
        proc = self.m.proc(pid)
        task_pol = self.m.main_thread(proc).policy
        n = self.m.topology.n_nodes
        lines = []
        per_node, placed = np.zeros(n, np.int64), np.zeros(n, np.int64)
        stats = np.zeros(3, np.int64)
        blocks = self.m.pt.blocks_of(proc.asid)               # once, sorted by address
        pmds = self.m.pt.pmds_of(blocks)
        for v in proc.vmas:
            pol = v.effective_policy(v.start)
            if pol is None:
                pol = task_pol
            line = f"{v.start << PAGE_SHIFT:08x} {'default' if pol is None else pol.to_str()}"
            if v.shm is not None:
                line += " file=/dev/zero\\040(deleted)"
            per_node[:] = 0
            first = np.searchsorted(pmds, v.start >> PTRS_PER_PMD_SHIFT)
            last = np.searchsorted(pmds, (v.end - 1) >> PTRS_PER_PMD_SHIFT, side="right")
            numa_maps_stats(self.m.st, blocks[first:last], v.start, v.end, per_node, stats)
            pages, dirty, mapmax = (int(x) for x in stats)
            placed += per_node
            if pages:
                anon = 0 if v.shm is not None else pages
                if anon:
                    line += f" anon={anon}"
                if dirty:
                    line += f" dirty={dirty}"
                if pages != anon and pages != dirty:
                    line += f" mapped={pages}"
                if mapmax > 1:
                    line += f" mapmax={mapmax}"
                for node in range(n):
                    if per_node[node]:
                        line += f" N{node}={int(per_node[node])}"
                line += f" kernelpagesize_kB={PAGE_SIZE >> 10}"
            lines.append(line)
        return "".join(line + "\n" for line in lines), placed

    def threads(self) -> list[dict]:
        """One dict per live thread: tid, pid, cpu, node, local, remote accesses."""
        m = self.m
        return [dict(tid=tid, pid=th.pid, cpu=th.cpu, node=m.topology.cpu_node[th.cpu],
                     local=th.local, remote=th.remote)
                for tid, th in sorted(m.threads.items())]

MAX_QUERY_PAGES = 1 << 32         # 16 TiB: one answer per page would take 8-32 GiB


def _query_length(length):
    """page_nodes/page_flags: an unsigned long of at most MAX_QUERY_PAGES pages, else
    EINVAL (not a length that wraps to a small one, nor an answer that cannot be held)."""
    length = as_int(length, "length")
    if not 0 <= length < 1 << 64:
        raise_errno(errno.EINVAL, f"length {length} is not an unsigned long")
    if length > MAX_QUERY_PAGES << PAGE_SHIFT:
        raise_errno(errno.EINVAL, f"length {length:#x}: more than {MAX_QUERY_PAGES} pages "
                                  f"in one query")
    return length
