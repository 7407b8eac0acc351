"""Page migration (mm/migrate.c): move_pages(2), migrate_pages(2), and the queueing and
migration of folios that mbind(MPOL_MF_MOVE) uses. Checks run in Linux's order (OSError
with Linux's errno before anything changes); kernels/migrate.py moves the folios."""
from __future__ import annotations

import errno

import numpy as np

from .constants import (HPAGE_PMD_NR, MOVE_PAGES_UNWRITTEN, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL,
                        PAGE_SHIFT, TASK_SIZE)
from .dtypes import CTL_NFRAMES, PTRS_PER_PMD, TARGET_NODE, TARGET_POLICY
from .errors import BAD_ADDRESS, bad_output, raise_errno
from .kernels.migrate import do_pages_move, queue_node_folios, queue_pages_range
from .kernels.migrate import migrate_pages as migrate_folios
from .kernels.range import pages_stat
from .policy import as_int, get_nodes, mask_nodes

_U64 = (1 << 64) - 1


class Migrate:
    """move_pages(2), migrate_pages(2) and the folio migration behind mbind's MOVE."""

    def __init__(self, machine):
        self.m = machine

    def reserve_thp_splits(self, frames=None):
        """Frames for splitting the THPs among ``frames`` (all THPs when None): a migration
        splits those whose target is full."""
        m = self.m
        order = m.pt.frames["order"]
        if frames is None:
            frames = slice(0, int(m.pt.ctl[CTL_NFRAMES]))
        n_thp = int(np.count_nonzero(order[frames]))
        if n_thp:
            m.pt.reserve(blocks=0, frames=HPAGE_PMD_NR * n_thp)

    def queue(self, proc, lo, hi, user_mask, flags):
        """queue_pages_range over [lo, hi): (count, folios, vpns); a negative count when
        MPOL_MF_STRICT found a page outside ``user_mask``."""
        m = self.m
        blocks = m.pt.blocks_of(proc.asid, lo, hi)
        n_max = min(hi - lo, len(blocks) * PTRS_PER_PMD)
        out_f = np.empty(n_max, np.int64)
        out_v = np.empty(n_max, np.int64)
        n = queue_pages_range(m.st, blocks, lo, hi, np.uint64(user_mask & _U64),
                              flags, out_f, out_v)
        return n, out_f, out_v

    def migrate_to_policy(self, proc, frames, vpns, pol_id, cpu):
        """migrate_pages of queued folios to where policy ``pol_id`` allocates them (as a
        fault at each vpn would); returns the pages not moved."""
        m = self.m
        vmas = m.kernel_vmas(proc)
        self.reserve_thp_splits(frames)
        return migrate_folios(m.st, vmas, proc.asid, frames, vpns, TARGET_POLICY, pol_id, cpu)

    # ------------------------------------------------------------------ migration
    def _caller(self, caller, target):
        return target if caller is None else self.m.proc(caller)

    def _may_access(self, caller, target):
        if caller.uid != target.uid and not caller.cap_sys_nice:
            raise_errno(errno.EPERM, f"process {caller.pid} (uid {caller.uid}) may not access "
                                     f"process {target.pid} (uid {target.uid})")

    def move_pages(self, pid, addrs, nodes=None, flags=0, *, caller=None, status=None,
                   nr_pages=None):
        """move_pages(2): with ``nodes`` None, query; else move each page to its node.

        Returns the per-page status array (node, or -errno). ENODEV (a target without
        memory) and ENOMEM (a full target) fail the call after earlier runs moved, as Linux.
        ``addrs``/``nodes`` BAD_ADDRESS: the first get_user fails (EFAULT, nothing done);
        ``status`` BAD_ADDRESS: the first store_status fails (EFAULT after the pages
        before it moved, kernels/migrate.do_pages_move). ``nr_pages``: the count Linux
        reads (default len(addrs); with addrs BAD_ADDRESS len(nodes), else 1); 0 reads
        and writes nothing.
        """
        m = self.m
        flags = as_int(flags, "flags")
        if flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) or flags < 0:
            raise_errno(errno.EINVAL, f"move_pages flags {flags:#x} outside MPOL_MF_MOVE|"
                                      f"MPOL_MF_MOVE_ALL")
        pid = as_int(pid, "pid")
        caller_p = self._caller(caller, m.procs.get(pid)) if caller is not None else None
        if flags & MPOL_MF_MOVE_ALL and caller_p is not None and not caller_p.cap_sys_nice:
            raise_errno(errno.EPERM, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
        target = m.proc(pid)
        caller_p = caller_p or target
        if flags & MPOL_MF_MOVE_ALL and not caller_p.cap_sys_nice:
            raise_errno(errno.EPERM, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
        self._may_access(caller_p, target)
        bad_status = bad_output(status, "status")
        vpns = None if addrs is BAD_ADDRESS else _vpn_array(addrs)
        n = _count(vpns, nodes, nr_pages)
        if n and (vpns is None or nodes is BAD_ADDRESS):      # get_user of entry 0
            raise_errno(errno.EFAULT, "move_pages: the pages or nodes array cannot be read "
                                      "(BAD_ADDRESS)")
        if vpns is None or nodes is BAD_ADDRESS:   # nr_pages 0: nothing read or written
            return np.zeros(0, np.int64)
        status = np.full(vpns.size, MOVE_PAGES_UNWRITTEN, np.int64)
        blocks = m.pt.blocks_of(target.asid)
        pmds = m.pt.pmds_of(blocks)
        vmas = m.kernel_vmas(target)
        if nodes is None:
            pages_stat(m.st, vmas, blocks, pmds, vpns, status)
            if bad_status and n:                         # do_pages_stat's copy_to_user
                raise_errno(errno.EFAULT, "move_pages: the status array cannot be written "
                                          "(BAD_ADDRESS)")
            return status
        targets = _node_array(nodes, vpns.size)
        cpu = m.main_thread(caller_p).cpu
        self.reserve_thp_splits()
        err = do_pages_move(m.st, vmas, target.asid, blocks, pmds, vpns, targets,
                            bool(flags & MPOL_MF_MOVE_ALL), cpu, status,
                            m.topology.n_nodes, not bad_status)
        if err == -errno.EFAULT:
            raise_errno(errno.EFAULT, "move_pages: the status array cannot be written "
                                      "(BAD_ADDRESS; the pages before it moved)")
        if err < 0:
            raise_errno(-err, "move_pages: " + ("a target node has no memory"
                                                if -err == errno.ENODEV else
                                                "a target node is full"))
        return status

    def migrate_pages(self, pid, old_nodes, new_nodes, *, caller=None):
        """migrate_pages(2): move the pages of ``pid`` on old_nodes to new_nodes by
        node_remap. Returns the number of pages not moved. ENOMEM (a destination full)
        fails the call with the sources before it already moved, as Linux."""
        m = self.m
        old = get_nodes(old_nodes)
        new = get_nodes(new_nodes)
        target = m.proc(pid)
        caller_p = self._caller(caller, target)
        self._may_access(caller_p, target)
        if new & ~m.memory_mask and not caller_p.cap_sys_nice:
            raise_errno(errno.EPERM, "new_nodes outside the target's allowed nodes and no "
                                     "CAP_SYS_NICE")
        new &= m.memory_mask
        if not new:
            raise_errno(errno.EINVAL, "new_nodes has no node with memory")
        move_all = caller_p.cap_sys_nice
        cpu = m.main_thread(caller_p).cpu
        vmas = m.kernel_vmas(target)
        not_moved = 0
        for source, dest in _remap_pairs(old, new):
            if source >= m.topology.n_nodes:
                continue
            blocks = m.pt.blocks_of(target.asid)
            frames = np.empty(len(blocks) * PTRS_PER_PMD, np.int64)
            vpns = np.empty(len(blocks) * PTRS_PER_PMD, np.int64)
            n = queue_node_folios(m.st, blocks, source, move_all, frames, vpns)
            if not n:
                continue
            self.reserve_thp_splits(frames[:n])
            err = migrate_folios(m.st, vmas, target.asid, frames[:n], vpns[:n],
                                 TARGET_NODE, dest, cpu)
            if err < 0:
                raise_errno(-err, f"migrate_pages: node {dest} is full (nodes before it "
                                  f"were migrated)")
            not_moved += err
        return min(not_moved, (1 << 31) - 1)




def node_remap(s, old, new):
    """node_remap: the k-th node of new (mod |new|) where k is the rank of s in old."""
    old_ids, new_ids = mask_nodes(old), mask_nodes(new)
    return new_ids[old_ids.index(s) % len(new_ids)]


def _remap_pairs(old, new):
    """do_migrate_pages' order of (source, dest) pairs."""
    tmp = old
    w_old, w_new = bin(old).count("1"), bin(new).count("1")
    while tmp:
        source = dest = None
        for s in mask_nodes(tmp):
            if w_old != w_new and new >> s & 1:
                continue
            d = node_remap(s, old, new)
            if s == d:
                continue
            source, dest = s, d
            if not tmp >> dest & 1:
                break
        if source is None:
            return
        tmp &= ~(1 << source)
        yield source, dest


def _count(vpns, nodes, nr_pages):
    """move_pages' nr_pages: the number of addresses (``vpns``; None: addrs is
    BAD_ADDRESS, then the length of a nodes sequence, else 1), or given (matching an
    addrs array)."""
    if vpns is None:
        n = 1 if nodes is None or nodes is BAD_ADDRESS or np.ndim(nodes) == 0 else len(nodes)
    else:
        n = vpns.size
    if nr_pages is None:
        return n
    nr_pages = as_int(nr_pages, "nr_pages")
    if nr_pages < 0 or (vpns is not None and nr_pages != n):
        raise ValueError(f"nr_pages {nr_pages}: must be the number of addrs ({n})")
    return nr_pages


def _vpn_array(addrs):
    arr = np.asarray(addrs)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError("addrs must be an int or a 1-D array of integer addresses")
    big = (arr < 0) | (arr >= TASK_SIZE) if arr.size else np.zeros(0, bool)
    vpn = np.where(big, -1, arr.astype(np.int64) >> PAGE_SHIFT) if arr.size else \
        np.zeros(0, np.int64)
    return np.ascontiguousarray(vpn, np.int64)


def _node_array(nodes, n):
    arr = np.asarray(nodes)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,) or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError(f"nodes must be an int or {n} integer node ids")
    return np.ascontiguousarray(np.clip(arr.astype(np.int64), -1, 1 << 20), np.int64)


def move_pages_range(proc, addr, length):
    """The addresses of the mapped pages of a MOVE_PAGES row's [addr, addr+max(len,1)).
    A range that wraps past 2**64 is EINVAL, one ending beyond the user address space
    EFAULT (no page there can be read), as the range checks of the other calls; the pages
    of its holes would only get -EFAULT in the status array, so only mapped pages are
    listed: memory follows what is mapped, not ``len``."""
    end = addr + max(length, 1)
    if end > 1 << 64:
        raise_errno(errno.EINVAL, f"MOVE_PAGES range {addr:#x} + {length:#x} wraps around")
    if end > TASK_SIZE:
        raise_errno(errno.EFAULT, f"MOVE_PAGES range {addr:#x}-{end:#x} ends beyond the "
                                  f"47-bit user address space")
    first, stop = addr >> PAGE_SHIFT, ((end - 1) >> PAGE_SHIFT) + 1
    runs = [np.arange(max(v.start, first), min(v.end, stop), dtype=np.int64)
            for v in proc.vmas.overlapping(first, stop)]
    return (np.concatenate(runs) if runs else np.zeros(0, np.int64)) << PAGE_SHIFT
