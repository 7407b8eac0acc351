"""mmap, munmap and madvise: VMAs split and merged as Linux does (mm/mmap.c, mm/vma.c,
mm/madvise.c); the page work is done by kernels. Also the range check the system calls
share, and vma_adjust_trans_huge (a VMA boundary inside a THP splits it)."""
from __future__ import annotations

import errno
from functools import partial
import os

import numpy as np

from .constants import (MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_NORMAL,
                        MAP_ANONYMOUS, MAP_HUGETLB, MAP_PRIVATE, MAP_SHARED, PAGE_SHIFT,
                        PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, TASK_SIZE)
from .dtypes import PTRS_PER_PMD, PTRS_PER_PMD_SHIFT, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_SHARED
from .errors import raise_errno
from .kernels.range import release_object, split_pmd_at, unmap_range
from .policy import as_int
from .vma import PROT_RW, ShmObject, Vma, VmaList

MMAP_BASE = 0x7F0000000000 >> PAGE_SHIFT      # top of the mmap area, as a vpn
_U64 = (1 << 64) - 1


class Mm:
    """mmap(2), munmap(2), madvise(2): the VMAs of every address space."""

    def __init__(self, machine):
        self.m = machine

    def new_vma_list(self, asid: int) -> VmaList:
        """An empty VMA list for address space ``asid``."""
        # a partial of a method, not a lambda: checkpoints save it (state_codec.py)
        return VmaList(self.m.config.max_map_count,
                       split_pmd=partial(self.vma_adjust_trans_huge, asid))

    def vma_adjust_trans_huge(self, asid: int, vpn: int) -> None:
        """vma_adjust_trans_huge: a new VMA boundary inside a PMD-mapped THP splits it."""
        if vpn & (PTRS_PER_PMD - 1):
            self.m.pt.reserve(blocks=0, frames=PTRS_PER_PMD)
            split_pmd_at(self.m.st, asid, vpn)

    def user_range(self, addr, length, *, allow_zero, task_size=True):
        """Validate (addr, length) as munmap/madvise/mbind do: page-aligned start, length
        rounded up as an unsigned long, no wrap, a non-empty range inside TASK_SIZE (munmap
        only: ``task_size=False`` for mbind and madvise, which have no such check in Linux;
        what lies beyond is a hole to them). Returns (lo_vpn, hi_vpn); lo == hi for an
        empty range."""
        addr = as_int(addr, "addr")
        length = as_int(length, "length") & _U64
        if addr & (PAGE_SIZE - 1) or addr < 0:
            raise_errno(errno.EINVAL, f"address {addr:#x} is not page aligned")
        end = (addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))) & _U64
        if end < addr:
            raise_errno(errno.EINVAL, f"range {addr:#x} + {length:#x} wraps around")
        if end == addr and not allow_zero:
            raise_errno(errno.EINVAL, "length 0")
        if task_size and end > TASK_SIZE and end != addr:
            raise_errno(errno.EINVAL, f"range {addr:#x}-{end:#x} ends beyond the 47-bit user "
                                      f"address space")
        return addr >> PAGE_SHIFT, end >> PAGE_SHIFT

    def mmap(self, pid, length, flags=MAP_PRIVATE | MAP_ANONYMOUS, addr=None, prot=PROT_RW):
        """An anonymous mapping; returns its address. See docs/api.md for the rules
        (``prot``: do_mmap keeps PROT_READ/WRITE/EXEC, calc_vm_prot_bits, and ignores other
        bits)."""
        proc = self.m.proc(pid)
        length = as_int(length, "length")
        flags = as_int(flags, "flags")
        prot = as_int(prot, "prot") & (PROT_READ | PROT_WRITE | PROT_EXEC)
        if addr is not None:
            addr = as_int(addr, "addr")
        if not flags & MAP_ANONYMOUS:               # what is not modelled, then do_mmap's order
            raise_errno(errno.EINVAL, "only anonymous mappings (MAP_ANONYMOUS) are modelled")
        if flags & MAP_HUGETLB:
            raise_errno(errno.EINVAL, "MAP_HUGETLB (hugetlbfs) is not modelled")
        if length == 0:
            raise_errno(errno.EINVAL, "mmap length 0")
        n_pages = ((length & _U64) + PAGE_SIZE - 1) >> PAGE_SHIFT
        if n_pages == 0 or n_pages << PAGE_SHIFT > TASK_SIZE:
            raise_errno(errno.ENOMEM, f"mmap length {length:#x} exceeds the address space")
        if len(proc.vmas) > self.m.config.max_map_count:
            raise_errno(errno.ENOMEM, f"process {proc.pid} has more than vm.max_map_count "
                                      f"({self.m.config.max_map_count}) mappings")
        if addr is None:
            lo = self._unmapped_area(proc, n_pages)
        else:
            if addr < 0 or addr > TASK_SIZE - (n_pages << PAGE_SHIFT):
                raise_errno(errno.ENOMEM, f"mapping {addr:#x}+{length:#x} ends beyond the "
                                          f"47-bit user address space")
            if addr & (PAGE_SIZE - 1):
                raise_errno(errno.EINVAL, f"mmap address {addr:#x} is not page aligned")
            lo = addr >> PAGE_SHIFT
        kind = flags & (MAP_SHARED | MAP_PRIVATE)
        if kind not in (MAP_SHARED, MAP_PRIVATE):
            raise_errno(errno.EINVAL, "mmap needs exactly one of MAP_SHARED and MAP_PRIVATE")
        if addr is not None:
            self.unmap(proc, lo, lo + n_pages, check_count=True)
        hi = lo + n_pages
        vmas = proc.vmas
        if kind == MAP_SHARED:                       # a new object: never merges
            vmas.insert(Vma(lo, hi, VM_SHARED, 0, None, ShmObject(self.m.new_asid(), n_pages),
                            prot=prot, account=False))
            return lo << PAGE_SHIFT
        before = [v for v in vmas.overlapping(lo - 1, lo) if v.end == lo]
        after = [v for v in vmas.overlapping(hi, hi + 1) if v.start == hi]
        account = bool(prot & PROT_WRITE)           # accountable_mapping: private, writable
        prev = before[0] if before and before[0].can_merge(None, lo, 0, None, prot, account) \
            else None
        nxt = after[0] if after and after[0].shm is None and after[0].flags == 0 and \
            after[0].policy is None and after[0].pgoff == hi and after[0].prot == prot \
            and after[0].account == account else None
        if prev is not None and nxt is not None:      # vma_merge_new_range
            prev.end = nxt.end
            prev.anon = prev.anon or nxt.anon
            vmas.remove(nxt)
        elif prev is not None:
            prev.end = hi
            vmas.changed()
        elif nxt is not None:
            nxt.start = nxt.pgoff = lo
            vmas.changed()
        else:
            vmas.insert(Vma(lo, hi, 0, lo, prot=prot, account=account))
        return lo << PAGE_SHIFT

    def _unmapped_area(self, proc, n_pages):
        """Top-down search below MMAP_BASE (vm_unmapped_area), 2 MiB aligned for lengths
        that are multiples of 2 MiB (thp_get_unmapped_area)."""
        align = PTRS_PER_PMD if n_pages % PTRS_PER_PMD == 0 else 1
        top = MMAP_BASE
        for v in reversed(proc.vmas.vmas):
            if v.start >= top:
                continue
            if v.end <= top:
                cand = (top - n_pages) // align * align
                if cand >= v.end:
                    return cand
            top = min(top, v.start)
        cand = (top - n_pages) // align * align
        if cand < 1:
            raise_errno(errno.ENOMEM, f"no room for {n_pages} pages below the mmap base")
        return cand

    def unmap(self, proc, lo, hi, *, check_count):
        """do_vmi_munmap over [lo, hi): ENOMEM when punching a hole in one VMA of a process
        at max_map_count; else split at the edges, zap the pages, remove the VMAs, free page
        tables no VMA overlaps any more, release shared objects left without mappings."""
        vmas = proc.vmas.overlapping(lo, hi)
        if not vmas:
            return
        first, last = vmas[0], vmas[-1]
        if check_count and first.start < lo and hi < first.end and \
                len(proc.vmas) >= self.m.config.max_map_count:
            raise_errno(errno.ENOMEM, f"munmap would split a VMA beyond vm.max_map_count "
                                      f"({self.m.config.max_map_count})")
        if lo > first.start:
            upper = proc.vmas.split(first, lo)
            if last is first:
                last = upper
        if hi < last.end:
            proc.vmas.split(last, hi)
        self.zap(proc, lo, hi)
        released = [proc.vmas.remove(v) for v in proc.vmas.overlapping(lo, hi)]
        self._free_pgtables(proc, lo, hi)
        for shm in released:
            if shm is not None:
                release_object(self.m.st, self.m.pt.blocks_of(shm.asid))

    def zap(self, proc, lo, hi):
        """unmap_page_range over [lo, hi): pages go with their last mapping."""
        blocks = self.m.pt.blocks_of(proc.asid, lo, hi)
        self.m.pt.reserve(blocks=0, frames=2 * PTRS_PER_PMD)
        unmap_range(self.m.st, blocks, lo, hi)

    def _free_pgtables(self, proc, lo, hi):
        """free_pgtables: a PTE table goes when no VMA overlaps its 2 MiB any more."""
        first, last = lo >> PTRS_PER_PMD_SHIFT, (hi - 1) >> PTRS_PER_PMD_SHIFT
        gone = [pmd for pmd in (first, last)
                if not proc.vmas.overlapping(pmd << PTRS_PER_PMD_SHIFT,
                                             (pmd + 1) << PTRS_PER_PMD_SHIFT)]
        blocks = self.m.pt.blocks_of(proc.asid, lo, hi)
        pmds = self.m.pt.pmds_of(blocks)
        inner = (pmds > first) & (pmds < last)
        edge = np.isin(pmds, gone)
        self.m.pt.blk_used[blocks[inner | edge]] = 0         # (no entry left: zapped above)
        self.m.pt.blk_table[blocks[inner | edge]] = 0
        self.m.pt.blk_numa[blocks[inner | edge]] = 0

    def munmap(self, pid, addr, length):
        """Remove mappings in [addr, addr+length); holes are fine."""
        proc = self.m.proc(pid)
        lo, hi = self.user_range(addr, length, allow_zero=False)
        self.unmap(proc, lo, hi, check_count=True)

    def madvise(self, pid, addr, length, advice):
        """MADV_HUGEPAGE / MADV_NOHUGEPAGE / MADV_NORMAL / MADV_DONTNEED over the range.

        As Linux: a split beyond vm.max_map_count fails with EAGAIN, and a hole in the range
        gives ENOMEM after the mapped parts were advised. MADV_NORMAL clears only hints that
        are not modelled (it keeps the huge-page advice)."""
        proc = self.m.proc(pid)
        advice = as_int(advice, "advice")
        if advice not in (MADV_NORMAL, MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE):
            raise_errno(errno.EINVAL, f"advice {advice} is not modelled (MADV_NORMAL, "
                                      f"MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE)")
        addr = as_int(addr, "addr")
        length = as_int(length, "length")
        if addr & (PAGE_SIZE - 1) or addr < 0:
            raise_errno(errno.EINVAL, f"address {addr:#x} is not page aligned")
        if length and not ((length & _U64) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & _U64:
            raise_errno(errno.EINVAL, f"madvise length {length:#x} rounds to 0")
        lo, hi = self.user_range(addr, length, allow_zero=True, task_size=False)
        if lo == hi:
            return
        unmapped, start = False, lo
        while start < hi:
            following = proc.vmas.overlapping(start, hi)
            if not following:
                raise_errno(errno.ENOMEM, f"part of {addr:#x}-{hi << PAGE_SHIFT:#x} is not "
                                          f"mapped")
            v = following[0]
            if start < v.start:
                unmapped, start = True, v.start
            end = min(hi, v.end)
            if advice == MADV_DONTNEED:
                self.zap(proc, start, end)
            elif advice in (MADV_HUGEPAGE, MADV_NOHUGEPAGE):
                set_f, clear_f = ((VM_HUGEPAGE, VM_NOHUGEPAGE) if advice == MADV_HUGEPAGE
                                  else (VM_NOHUGEPAGE, VM_HUGEPAGE))
                new = (v.flags | set_f) & ~clear_f
                if new != v.flags:
                    try:
                        v = proc.vmas.modify(v, start, end, new, v.policy)
                    except OSError as e:
                        if e.errno != errno.ENOMEM:
                            raise
                        raise OSError(errno.EAGAIN, f"{os.strerror(errno.EAGAIN)}: {e}") \
                            from None                         # madvise_update_vma
                    v.flags = new
                    proc.vmas.changed()
                end = max(end, min(hi, v.end))
            start = end
        if unmapped:
            raise_errno(errno.ENOMEM, f"part of {addr:#x}-{hi << PAGE_SHIFT:#x} is not mapped")

