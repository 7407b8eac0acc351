"""Virtual memory areas of one address space: lookup, split, merge, and the kernels' view.

Addresses here are page numbers (vpn). A private anonymous VMA has ``pgoff`` = its start
vpn at mmap time, kept linear by splits (so the interleave index is ``addr >> 12``); a shared
anonymous VMA maps ``ShmObject`` pages from ``pgoff`` on.
"""
import bisect
import errno
from copy import copy
from dataclasses import dataclass, field, replace

import numpy as np

from .constants import PROT_EXEC, PROT_READ, PROT_WRITE
from .dtypes import VM_ANON, VM_EXEC, VM_READ, VM_ROW_CONT, VM_SHARED, VM_WRITE, VMA_DTYPE
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


PROT_RW = PROT_READ | PROT_WRITE


def vm_prot_bits(prot):
    """calc_vm_prot_bits: PROT_READ/WRITE/EXEC as the kernels' VM_READ/WRITE/EXEC."""
    return ((VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0)
            | (VM_EXEC if prot & PROT_EXEC else 0))


@dataclass(eq=False, slots=True)
class Vma:
    start: int
    end: int
    flags: int
    pgoff: int
    policy: object = None          # Policy or None (for shm: the copy mbind stored here)
    shm: ShmObject = None
    anon: bool = False             # has an anon_vma: a page other than the zero page was
                                   # faulted, or a THP fault ran (fork copies only these)
    numab: object = None           # numa_balancing.NumabState once the NUMA scanner saw it
    prot: int = PROT_RW            # PROT_READ|PROT_WRITE|PROT_EXEC bits (mmap, mprotect)
    account: bool = True           # VM_ACCOUNT: a private mapping that is (or was, with
                                   # pages) writable; VMAs differing in it do not merge

    @property
    def accessible(self):
        """vma_is_accessible: any of read, write, exec (PROT_NONE is not)."""
        return bool(self.prot & (PROT_READ | PROT_WRITE | PROT_EXEC))

    def pgoff_at(self, vpn):
        return self.pgoff + (vpn - self.start)

    def can_merge(self, shm, pgoff, flags, policy, prot=PROT_RW, account=True):
        """is_mergeable_vma + can_vma_merge_*: would [end, ...) with these attributes join
        this VMA? Same object, contiguous page offsets, equal flags (the protection and
        VM_ACCOUNT too: they are vm_flags) and policy (mpol_equal). fastnuma ignores
        anon_vma compatibility."""
        return (self.shm is shm and self.flags == flags and self.policy == policy
                and self.prot == prot and self.account == account
                and self.pgoff_at(self.end) == pgoff)

    def effective_policy(self, vpn):
        """__get_vma_policy: the shared tree for shm, else the VMA's own policy."""
        if self.shm is not None:
            return self.shm.policy_at(self.pgoff + vpn - self.start)
        return self.policy


class VmaList:
    """The sorted, non-overlapping VMAs of one address space.

    ``split_pmd(vpn)`` is called before a VMA boundary appears at ``vpn`` (a PMD-mapped THP
    across it is split: vma_adjust_trans_huge)."""

    def __init__(self, max_map_count, split_pmd=None):
        self.vmas = []
        self.max_map_count = max_map_count
        self.split_pmd = split_pmd or (lambda vpn: None)
        self._starts = []
        self._view = None
        self._view_vmas = []

    def __len__(self):
        return len(self.vmas)

    def __iter__(self):
        return iter(self.vmas)

    def changed(self):
        self.sync_from_view()
        self.vmas.sort(key=lambda v: v.start)
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

    def neighbours(self, v):
        i = self.vmas.index(v)
        prev = self.vmas[i - 1] if i > 0 and self.vmas[i - 1].end == v.start else None
        nxt = (self.vmas[i + 1] if i + 1 < len(self.vmas) and self.vmas[i + 1].start == v.end
               else None)
        return prev, nxt

    def insert(self, vma):
        self.vmas.append(vma)
        if vma.shm is not None:
            vma.shm.users += 1
        self.changed()

    def remove(self, vma):
        """The VMA goes; returns its shared object when that was its last mapping."""
        self.vmas.remove(vma)
        self.changed()
        if vma.shm is not None:
            vma.shm.users -= 1
            if vma.shm.users == 0:
                return vma.shm
        return None

    def split(self, v, at):
        """__split_vma: [start, at) stays ``v``, [at, end) is returned (no count check)."""
        self.split_pmd(at)
        upper = replace(v, start=at, pgoff=v.pgoff_at(at), numab=copy(v.numab))
        v.end = at
        self.insert(upper)
        return upper

    def check_split(self):
        if len(self.vmas) >= self.max_map_count:
            raise_errno(errno.ENOMEM, f"a VMA split would exceed vm.max_map_count "
                                      f"({self.max_map_count})")

    def modify(self, v, lo, hi, flags, policy, prot=None, account=None):
        """vma_modify (mm/vma.c): give [lo, hi) of ``v`` new flags, policy, protection and
        VM_ACCOUNT (None: v's), merging with the previous/next VMA when the range reaches
        its edge and they match, else splitting (ENOMEM when the process already has
        max_map_count VMAs). Returns the VMA now holding the range; the caller sets the
        attributes."""
        prot = v.prot if prot is None else prot
        account = v.account if account is None else account
        prev, nxt = self.neighbours(v)
        merge_prev = (prev is not None and lo == v.start
                      and prev.can_merge(v.shm, v.pgoff_at(lo), flags, policy, prot, account))
        merge_next = (nxt is not None and hi == v.end and nxt.shm is v.shm
                      and nxt.flags == flags and nxt.policy == policy and nxt.prot == prot
                      and nxt.account == account and v.pgoff_at(hi) == nxt.pgoff)
        if merge_prev and merge_next:
            prev.end = nxt.end
            prev.anon = prev.anon or v.anon or nxt.anon
            self.remove(v)
            self.remove(nxt)
            return prev
        if merge_prev:
            prev.anon = prev.anon or v.anon
            if hi == v.end:
                prev.end = v.end
                self.remove(v)
            else:
                self.split_pmd(hi)
                prev.end = hi
                v.pgoff, v.start = v.pgoff_at(hi), hi
                self.changed()
            return prev
        if merge_next:
            nxt.anon = nxt.anon or v.anon
            if lo == v.start:
                nxt.start, nxt.pgoff = v.start, v.pgoff
                self.remove(v)
            else:
                self.split_pmd(lo)
                nxt.pgoff -= nxt.start - lo
                nxt.start = lo
                v.end = lo
                self.changed()
            return nxt
        if v.start < lo:
            self.check_split()
            v = self.split(v, lo)
        if v.end > hi:
            self.check_split()
            self.split(v, hi)
        return v

    def kernel_view(self, policies):
        """VMA_DTYPE rows for the kernels, shared VMAs cut at shared-policy boundaries.
        Row flags carry VM_ANON for VMAs with an anon_vma; kernels set it when they fault
        a page in, and :meth:`sync_anon` copies it back."""
        if self._view is not None:
            return self._view
        rows, owners = [], []
        for v in self.vmas:
            anon = (VM_ANON if v.anon else 0) | vm_prot_bits(v.prot)
            if v.shm is None:
                rows.append((v.start, v.end, v.pgoff, v.flags | anon, policies.intern(v.policy),
                             -1, 0, 0))
                owners.append(v)
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
                cont = VM_ROW_CONT if s > v.start else 0      # the same VMA (fault-around)
                rows.append((s, e, v.pgoff + s - v.start, v.flags | VM_SHARED | anon | cont,
                             pol, v.shm.asid, 0, 0))
                owners.append(v)
        self._view = np.array(rows, dtype=VMA_DTYPE) if rows else np.zeros(0, VMA_DTYPE)
        self._view_vmas = owners
        return self._view

    def current_view(self):
        """The kernels' view as last built (kernel_view), or None when it must be rebuilt."""
        return self._view

    def sync_from_view(self):
        """Copy back what kernels wrote in the current view: VM_ANON (a page was faulted
        in), and the threads' bits of NUMA hinting faults, into the scan state of VMAs
        that have one (vma_set_access_pid_bit)."""
        view = self._view
        if view is None:
            return
        for k in np.flatnonzero(view["flags"] & VM_ANON):
            self._view_vmas[k].anon = True
        for k in np.flatnonzero(view["pids"]):
            numab = self._view_vmas[k].numab
            if numab is not None:
                numab.pids1 |= int(view["pids"][k])
            view["pids"][k] = 0
