"""mprotect(2): a range's protection, as Linux's mm/mprotect.c changes it.

do_mprotect_pkey checks the arguments, then walks the VMAs of the range: mprotect_fixup
gives each part its new VM_READ/WRITE/EXEC (VMAs split and merge as for mbind and
madvise: vma_modify_flags) and change_protection rewrites its present entries
(kernels/mprotect.py). What an access then meets is the fault entry's business
(kernels/vma.access_error); docs/linux-semantics.md §3.6 has the rules.
"""
from __future__ import annotations

import errno

from .constants import (PAGE_SHIFT, PAGE_SIZE, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP,
                        PROT_READ, PROT_SEM, PROT_WRITE)
from .errors import raise_errno
from .kernels.mprotect import change_protection
from .policy import as_int

_U64 = (1 << 64) - 1
PROT_ACCESS = PROT_READ | PROT_WRITE | PROT_EXEC


class Mprotect:
    """mprotect(2) on the VMAs that mm.py keeps."""

    def __init__(self, machine):
        self.m = machine

    def mprotect(self, pid, addr, length, prot):
        """do_mprotect_pkey(addr, length, prot, -1): see docs/api.md for the errnos."""
        proc = self.m.proc(pid)
        addr = as_int(addr, "addr")
        length = as_int(length, "length") & _U64          # size_t
        prot = as_int(prot, "prot") & _U64                # unsigned long
        grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
        prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
        if grows == PROT_GROWSDOWN | PROT_GROWSUP:
            raise_errno(errno.EINVAL, "PROT_GROWSDOWN and PROT_GROWSUP together")
        if addr & (PAGE_SIZE - 1) or addr < 0:
            raise_errno(errno.EINVAL, f"address {addr:#x} is not page aligned")
        if not length:
            return
        end = addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & _U64)
        if end > _U64 or end <= addr:
            raise_errno(errno.ENOMEM, f"range {addr:#x} + {length:#x} wraps around")
        if prot & ~(PROT_ACCESS | PROT_SEM):                      # arch_validate_prot
            raise_errno(errno.EINVAL, f"prot {prot:#x} has bits other than PROT_READ, "
                                      f"PROT_WRITE, PROT_EXEC and PROT_SEM")
        lo, hi = addr >> PAGE_SHIFT, end >> PAGE_SHIFT
        vmas = proc.vmas
        found = vmas.overlapping(lo, hi)                          # vma_find(start, end)
        if not found or (not grows & PROT_GROWSDOWN and found[0].start > lo):
            raise_errno(errno.ENOMEM, f"{addr:#x}-{end:#x} starts outside every mapping")
        if grows:            # no VMA here is VM_GROWSDOWN/VM_GROWSUP (no stacks are mapped)
            raise_errno(errno.EINVAL, "PROT_GROWSDOWN/PROT_GROWSUP on a mapping that does "
                                      "not grow")
        new = prot & PROT_ACCESS
        start = lo
        while start < hi:
            v = vmas.find(start)
            if v is None:            # a hole: the VMAs before it keep their new protection
                raise_errno(errno.ENOMEM, f"part of {addr:#x}-{end:#x} is not mapped")
            stop = min(hi, v.end)
            if new != v.prot:
                self.mprotect_fixup(proc, v, start, stop, new)
            start = stop

    def mprotect_fixup(self, proc, v, lo, hi, new):
        """mprotect_fixup for [lo, hi) of ``v`` (whose protection differs from ``new``):
        VM_ACCOUNT as Linux keeps it, vma_modify_flags (ENOMEM beyond max_map_count), then
        change_protection of the part with the VMA's new vm_page_prot."""
        vmas = proc.vmas
        vmas.sync_from_view()                # v.anon: the kernels may have set VM_ANON
        account = v.account
        if new & PROT_WRITE:
            if not (v.account or v.prot & PROT_WRITE or v.shm is not None):
                account = True
        elif v.account and v.shm is None and not v.anon:
            account = False
        v = vmas.modify(v, lo, hi, v.flags, v.policy, prot=new, account=account)
        v.prot, v.account = new, account
        vmas.changed()
        blocks = self.m.pt.blocks_of(proc.asid, lo, hi)
        if len(blocks):
            change_protection(self.m.st, blocks, lo, hi, not new, bool(new & PROT_WRITE),
                              v.shm is not None)


def simulator_mprotect(self, pid: int, addr: int, length: int, prot: int) -> None:
    """mprotect(2) on process ``pid``: [addr, addr+length) gets ``prot`` (PROT_NONE, or
    PROT_READ | PROT_WRITE | PROT_EXEC); errnos as Linux's (docs/api.md)."""
    self._mprotect.mprotect(pid, addr, length, prot)
