"""Virtual memory areas of one address space: lookup, split, merge, and the kernels' view.

Addresses here are page numbers (vpn). A private anonymous VMA has ``pgoff`` = its start
vpn at mmap time, kept linear by splits (so the interleave index is ``addr >> 12``); a shared
anonymous VMA maps ``ShmObject`` pages from ``pgoff`` on.
"""
import bisect
import errno
from dataclasses import dataclass, field, replace

import numpy as np

from .dtypes import VM_SHARED, VMA_DTYPE
from .errors import raise_errno


@dataclass(eq=False, slots=True)
class ShmObject:
    """A MAP_SHARED anonymous object (shmem): its pages live in address space ``asid``
    indexed by page offset; ``policies`` is the shared policy tree [(lo, hi, Policy)]."""
    asid: int
    n_pages: int
    policies: list = field(default_factory=list)
    users: int = 0

    def set_policy(self, lo, hi, pol):
        """shared_policy_replace over page offsets [lo, hi) (None removes)."""
        kept = []
        for a, b, p in self.policies:
            if b <= lo or a >= hi:
                kept.append((a, b, p))
                continue
            if a < lo:
                kept.append((a, lo, p))
            if b > hi:
                kept.append((hi, b, p))
        if pol is not None:
            kept.append((lo, hi, pol))
        self.policies = sorted(kept, key=lambda t: t[0])

    def policy_at(self, off):
        for a, b, p in self.policies:
            if a <= off < b:
                return p
        return None


@dataclass(eq=False, slots=True)
class Vma:
    start: int
    end: int
    flags: int
    pgoff: int
    policy: object = None          # Policy or None (private VMAs only)
    shm: ShmObject = None

    def mergeable_with(self, nxt):
        """vma_merge's test for two adjacent VMAs (anon_vma compatibility not modelled)."""
        return (self.end == nxt.start and self.flags == nxt.flags and self.shm is None
                and nxt.shm is None and self.policy == nxt.policy
                and self.pgoff + (self.end - self.start) == nxt.pgoff)

    def effective_policy(self, vpn):
        """__get_vma_policy: the shared tree for shm, else the VMA's own policy."""
        if self.shm is not None:
            return self.shm.policy_at(self.pgoff + vpn - self.start)
        return self.policy


class VmaList:
    """The sorted, non-overlapping VMAs of one address space."""

    def __init__(self, max_map_count):
        self.vmas = []
        self.max_map_count = max_map_count
        self._starts = []
        self._view = None

    def __len__(self):
        return len(self.vmas)

    def __iter__(self):
        return iter(self.vmas)

    def changed(self):
        self._starts = [v.start for v in self.vmas]
        self._view = None

    def find(self, vpn):
        """The VMA containing vpn, or None."""
        i = bisect.bisect_right(self._starts, vpn) - 1
        if i >= 0 and self.vmas[i].end > vpn:
            return self.vmas[i]
        return None

    def overlapping(self, lo, hi):
        """VMAs meeting [lo, hi), in address order."""
        i = max(bisect.bisect_right(self._starts, lo) - 1, 0)
        out = []
        for v in self.vmas[i:]:
            if v.start >= hi:
                break
            if v.end > lo:
                out.append(v)
        return out

    def first_gap(self, lo, hi):
        """The first vpn of [lo, hi) that no VMA covers, or None."""
        pos = lo
        for v in self.overlapping(lo, hi):
            if v.start > pos:
                return pos
            pos = v.end
        return pos if pos < hi else None

    def split_at(self, vpn):
        """__split_vma: cut the VMA strictly containing vpn; ENOMEM at max_map_count."""
        v = self.find(vpn)
        if v is None or v.start == vpn:
            return
        if len(self.vmas) >= self.max_map_count:
            raise_errno(errno.ENOMEM, f"splitting a VMA would exceed vm.max_map_count "
                                      f"({self.max_map_count})")
        tail = replace(v, start=vpn, pgoff=v.pgoff + (vpn - v.start))
        v.end = vpn
        self.vmas.insert(self.vmas.index(v) + 1, tail)
        if tail.shm is not None:
            tail.shm.users += 1
        self.changed()

    def insert(self, vma):
        i = bisect.bisect_left(self._starts, vma.start)
        self.vmas.insert(i, vma)
        self.changed()

    def remove_range(self, lo, hi):
        """Drop [lo, hi) (splitting at the ends first); returns the shm objects released."""
        self.split_at(lo)
        self.split_at(hi)
        gone = [v for v in self.vmas if lo <= v.start and v.end <= hi]
        self.vmas = [v for v in self.vmas if not (lo <= v.start and v.end <= hi)]
        self.changed()
        released = []
        for v in gone:
            if v.shm is not None:
                v.shm.users -= 1
                if v.shm.users == 0:
                    released.append(v.shm)
        return released

    def merge_around(self, lo, hi):
        """vma_merge after a change of [lo, hi): join compatible neighbours there."""
        out = []
        for v in self.vmas:
            if out and lo <= v.start <= hi and out[-1].mergeable_with(v):
                out[-1].end = v.end
            else:
                out.append(v)
        if len(out) != len(self.vmas):
            self.vmas = out
            self.changed()

    def kernel_view(self, policies):
        """VMA_DTYPE rows for the kernels, shared VMAs cut at shared-policy boundaries."""
        if self._view is not None:
            return self._view
        rows = []
        for v in self.vmas:
            shm = -1 if v.shm is None else v.shm.asid
            if v.shm is None:
                rows.append((v.start, v.end, v.pgoff, v.flags, policies.intern(v.policy), shm, 0))
                continue
            cuts = {v.start, v.end}
            for a, b, _ in v.shm.policies:
                for off in (a, b):
                    s = v.start + off - v.pgoff
                    if v.start < s < v.end:
                        cuts.add(s)
            cuts = sorted(cuts)
            for s, e in zip(cuts, cuts[1:]):
                pol = policies.intern(v.shm.policy_at(v.pgoff + s - v.start))
                rows.append((s, e, v.pgoff + s - v.start, v.flags | VM_SHARED, pol, shm, 0))
        self._view = np.array(rows, dtype=VMA_DTYPE) if rows else np.zeros(0, VMA_DTYPE)
        return self._view
