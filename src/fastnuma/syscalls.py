"""The memory-policy system calls: mbind, set_mempolicy, get_mempolicy, move_pages,
migrate_pages. Each validates in Linux's order (raising OSError with Linux's errno before
touching anything), then mutates; kernels do the per-page work."""
import errno
from dataclasses import replace

import numpy as np

from .constants import (MAX_NUMNODES, MPOL_DEFAULT, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED,
                        MPOL_F_MOF, MPOL_F_NODE, MPOL_INTERLEAVE, MPOL_MF_LAZY, MPOL_MODE_FLAGS,
                        MPOL_NOOP, SEED_MPOL_NOOP,
                        MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT, MPOL_MF_VALID,
                        HPAGE_PMD_NR, MOVE_PAGES_UNWRITTEN, MPOL_WEIGHTED_INTERLEAVE,
                        PAGE_SHIFT, PAGE_SIZE)
from .errors import raise_errno
from .kernels.migrate import (TARGET_NODE, TARGET_POLICY, do_pages_move,
                              queue_node_folios, queue_pages_range)
from .kernels.migrate import migrate_pages as migrate_folios
from .kernels.alloc import alloc_pages_task
from .kernels.numa import T_ACC_LOCAL, T_ACC_REMOTE
from .kernels.state import CTL_NFRAMES, find_block
from .kernels.range import pages_stat, release_frames
from .policy import as_int, get_nodes, mask_nodes, mpol_new, sanitize_mpol_flags

_U64 = (1 << 64) - 1


class SyscallMixin:
    """mbind(2), set_mempolicy(2), get_mempolicy(2), move_pages(2), migrate_pages(2)."""

    # ------------------------------------------------------------------ helpers
    def _caller_thread(self, proc, tid):
        if tid is None:
            return self._main_thread(proc)
        th = self._thread(tid)
        if th.pid != proc.pid:
            raise_errno(errno.ESRCH, f"thread {th.tid} is not in process {proc.pid}")
        return th

    def _reserve_thp_splits(self, frames=None):
        """Frames for splitting the THPs among ``frames`` (all THPs when None): a migration
        splits those whose target is full."""
        order = self.pt.frames["order"]
        if frames is None:
            frames = slice(0, int(self.pt.ctl[CTL_NFRAMES]))
        n_thp = int(np.count_nonzero(order[frames]))
        if n_thp:
            self.pt.reserve(blocks=0, frames=HPAGE_PMD_NR * n_thp)

    def _queue(self, proc, lo, hi, user_mask, flags):
        blocks = self.pt.blocks_of(proc.asid, lo, hi)
        n_max = min(hi - lo, len(blocks) * 512)
        out_f = np.empty(n_max, np.int64)
        out_v = np.empty(n_max, np.int64)
        n = queue_pages_range(self.st, blocks, lo, hi, np.uint64(user_mask & _U64),
                              flags, out_f, out_v)
        return n, out_f, out_v

    # ------------------------------------------------------------------ mbind
    def mbind(self, pid, addr, length, mode, nodemask=None, flags=0, *, maxnode=None,
              tid=None):
        """mbind(2) on process ``pid`` by its thread ``tid`` (default: the leader).

        Checks run in kernel_mbind/do_mbind order (linux-semantics.md 2.1). On failure
        nothing changes, except as in Linux: a VMA split beyond vm.max_map_count (ENOMEM)
        leaves the VMAs before it with the new policy, and STRICT with MOVE/MOVE_ALL gives
        EIO **after** the policy was applied and the movable pages were moved.
        MPOL_MF_LAZY (unless ``linux_strict_flags``) is validated and stored: the policy gets
        MPOL_F_MOF, no page is checked or moved during the call (linux-semantics.md 2.5).
        """
        proc = self._proc(pid)
        th = self._caller_thread(proc, tid)
        noop = self._is_noop(mode)
        mode, mode_flags = (MPOL_NOOP, 0) if noop else sanitize_mpol_flags(mode)
        user_mask = get_nodes(nodemask, maxnode)
        flags = as_int(flags, "flags")
        valid = MPOL_MF_VALID if self.config.linux_strict_flags else MPOL_MF_VALID | MPOL_MF_LAZY
        if flags & ~valid or flags < 0:
            raise_errno(errno.EINVAL, f"mbind flags {flags:#x} outside {valid:#x}")
        if flags & MPOL_MF_MOVE_ALL and not proc.cap_sys_nice:
            raise_errno(errno.EPERM, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
        if mode == MPOL_DEFAULT or noop:        # nothing to check pages against
            flags &= ~MPOL_MF_STRICT
        lo, hi = self._range(addr, length, allow_zero=True)
        if lo == hi:
            return
        if noop:
            if user_mask:
                raise_errno(errno.EINVAL, "MPOL_NOOP with a non-empty node mask")
            new = None
        else:
            new = mpol_new(mode, mode_flags, user_mask, self._memory_mask)
        lazy = bool(flags & MPOL_MF_LAZY)
        if lazy and new is not None:
            new = replace(new, flags=new.flags | MPOL_F_MOF)
        if not proc.vmas.overlapping(lo, hi):
            raise_errno(errno.EFAULT, f"no mapping in {addr:#x}-{hi << PAGE_SHIFT:#x}")
        gap = None if mode == MPOL_DEFAULT and not lazy else proc.vmas.first_gap(lo, hi)
        if not lazy and flags & MPOL_MF_STRICT and not flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
            n, _, vpns = self._queue(proc, lo, hi, user_mask, flags)
            # queue_pages_test_walk checks the hole after each VMA before its pages
            hole_vma = None if gap is None or gap == lo else proc.vmas.find(gap - 1)
            if n < 0 and (gap is None or (hole_vma is not None and vpns[0] < hole_vma.start)):
                raise_errno(errno.EIO, f"MPOL_MF_STRICT: the page at {vpns[0] << PAGE_SHIFT:#x}"
                                       f" is on a node outside the mask (policy not applied)")
        if gap is not None:
            raise_errno(errno.EFAULT, f"{addr:#x}-{hi << PAGE_SHIFT:#x} is not fully mapped: "
                                      f"nothing at "
                                      f"{gap << PAGE_SHIFT:#x}")
        if lazy:                    # seed: mark the range, nothing is checked or moved now
            self._change_prot_numa(proc, lo, hi, self.topology.cpu_node[th.cpu])
        if noop:
            return
        self._mbind_range(proc, lo, hi, new)
        if lazy or not flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
            return
        n, frames, vpns = self._queue(proc, lo, hi, user_mask, flags)
        if not n:
            return
        pol_id = self.policies.intern(new if new is not None else th.policy)
        vmas = self._kernel_vmas(proc)
        self._reserve_thp_splits(frames[:n])
        rc = migrate_folios(self.st, vmas, proc.asid, frames[:n], vpns[:n], TARGET_POLICY,
                           pol_id, th.cpu)
        if rc and flags & MPOL_MF_STRICT:
            raise_errno(errno.EIO, "MPOL_MF_STRICT: some pages could not be moved (policy "
                                   "applied, the others moved)")

    def _is_noop(self, mode):
        """MPOL_NOOP (fastnuma's 0x100, or the seed's 5 with ``noop_mode``); a mode flag
        with it is EINVAL. Never with ``linux_strict_flags``."""
        mode = as_int(mode, "mode")
        base = mode & ~MPOL_MODE_FLAGS
        if self.config.linux_strict_flags or not (
                base == MPOL_NOOP or (self.config.noop_mode and base == SEED_MPOL_NOOP)):
            return False
        if mode & MPOL_MODE_FLAGS:
            raise_errno(errno.EINVAL, "MPOL_NOOP takes no mode flag")
        return True

    def _mbind_range(self, proc, lo, hi, new):
        """mbind_range + vma_replace_policy: VMA by VMA, skip a VMA whose policy is equal,
        else split/merge (vma_modify) and set it; shared memory also stores it in the
        object's policy tree. ENOMEM (a split beyond max_map_count) leaves the earlier VMAs
        changed, as Linux."""
        shared = False
        try:
            cur = lo
            while cur < hi:
                vmas = proc.vmas.overlapping(cur, hi)
                if not vmas:
                    break
                v = vmas[0]
                a, b = max(cur, v.start), min(hi, v.end)
                if v.policy != new:
                    v = proc.vmas.modify(v, a, b, v.flags, new)
                    v.policy = new
                    if v.shm is not None:
                        v.shm.set_policy(v.pgoff, v.pgoff_at(v.end), new)
                        shared = True
                    proc.vmas.changed()
                cur = b
        finally:
            if shared:                              # a shared policy is seen everywhere
                for other in self.procs.values():
                    other.vmas.changed()

    # ------------------------------------------------------------------ task policy
    def set_mempolicy(self, tid, mode, nodemask=None, *, maxnode=None):
        """set_mempolicy(2) for thread ``tid``; MPOL_DEFAULT removes its policy."""
        th = self._thread(tid)
        mode, mode_flags = sanitize_mpol_flags(mode)
        user_mask = get_nodes(nodemask, maxnode)
        new = mpol_new(mode, mode_flags, user_mask, self._memory_mask)
        th.policy = new
        if new is not None and new.mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
            th.il_prev, th.il_weight = MAX_NUMNODES - 1, 0

    def get_mempolicy(self, tid, addr=0, flags=0, *, maxnode=None):
        """get_mempolicy(2) by thread ``tid``: ``(mode, frozenset(nodes))``, or the node
        (an int) with MPOL_F_NODE. NODE|ADDR takes a read fault at addr, as lookup_node does
        (an unpopulated private page maps the zero page: node 0). As in Linux, a maxnode
        too large to copy out (maxnode-1 > 32768) fails with EINVAL last, after that fault
        took effect."""
        th = self._thread(tid)
        addr = as_int(addr, "addr")
        flags = as_int(flags, "flags")
        if maxnode is not None and as_int(maxnode, "maxnode") < self.topology.n_nodes:
            raise_errno(errno.EINVAL, f"maxnode {maxnode} is below the number of nodes "
                                      f"({self.topology.n_nodes})")
        result = self._do_get_mempolicy(th, addr, flags)
        if maxnode is not None and maxnode - 1 > 8 * PAGE_SIZE:   # copy_nodes_to_user, last
            raise_errno(errno.EINVAL, f"maxnode {maxnode}: more than a page of node mask")
        return result

    def _do_get_mempolicy(self, th, addr, flags):
        """do_get_mempolicy (after kernel_get_mempolicy's maxnode check)."""
        if flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED) or flags < 0:
            raise_errno(errno.EINVAL, f"get_mempolicy flags {flags:#x} unknown")
        if flags & MPOL_F_MEMS_ALLOWED:
            if flags & (MPOL_F_NODE | MPOL_F_ADDR):
                raise_errno(errno.EINVAL, "MPOL_F_MEMS_ALLOWED with MPOL_F_NODE or MPOL_F_ADDR")
            return 0, frozenset(mask_nodes(self._memory_mask))
        pol = th.policy
        if flags & MPOL_F_ADDR:
            v = self.procs[th.pid].vmas.find(addr >> PAGE_SHIFT) if addr >= 0 else None
            if v is None:
                raise_errno(errno.EFAULT, f"no mapping at {addr:#x}")
            pol = v.effective_policy(addr >> PAGE_SHIFT)
        elif addr:
            raise_errno(errno.EINVAL, f"address {addr:#x} given without MPOL_F_ADDR")
        if flags & MPOL_F_NODE:
            if flags & MPOL_F_ADDR:
                return self._lookup_node(th, addr)
            if pol is not None and pol is th.policy and pol.mode == MPOL_INTERLEAVE:
                return _next_node_in(th.il_prev, pol.nodes)
            if pol is not None and pol is th.policy and pol.mode == MPOL_WEIGHTED_INTERLEAVE:
                return th.il_prev if th.il_weight else _next_node_in(th.il_prev, pol.nodes)
            raise_errno(errno.EINVAL, "MPOL_F_NODE without MPOL_F_ADDR needs an interleave "
                                      "task policy")
        if pol is None:
            return MPOL_DEFAULT, frozenset()
        return pol.user_mode(), frozenset(mask_nodes(pol.user_mask()))

    def _lookup_node(self, th, addr):
        """lookup_node: get_user_pages of one page (a read fault when nothing is mapped;
        a page marked for NUMA hinting is followed without a fault), then its node."""
        page = addr & ~(PAGE_SIZE - 1)
        if not self.page_flags(th.pid, page, PAGE_SIZE)[0]:
            acc = self._tasks[th.slot, T_ACC_LOCAL:T_ACC_REMOTE + 1].copy()
            b = find_block(self.st, self.procs[th.pid].asid, page >> (PAGE_SHIFT + 9))
            pmd_mark = self.pt.blk_numa[b] if b >= 0 else 0
            if b >= 0:
                self.pt.blk_numa[b] = 0          # the seed's PMD mark is read through too
            self._scratch_counts[:] = 0
            self._touch(th, np.array([addr], np.int64), np.zeros(1, np.uint8))
            if b >= 0:
                self.pt.blk_numa[b] = pmd_mark
            self._tasks[th.slot, T_ACC_LOCAL:T_ACC_REMOTE + 1] = acc   # not an access
        return int(self.page_nodes(th.pid, page, PAGE_SIZE)[0])

    # ------------------------------------------------------------------ page cache
    def page_cache_read(self, tid, n_pages=1):
        """Thread ``tid`` reads ``n_pages`` of an uncached file: page-cache pages are
        allocated with no VMA, under its task policy and no interleave index
        (filemap_alloc_folio), so an interleave task policy takes the per-task round robin
        from its lowest node after set_mempolicy. Returns the nodes, in order. The pages
        stay until :meth:`drop_caches`. Allocation failure raises ENOMEM after the pages
        allocated so far (page cache is reclaimable; no process is killed)."""
        th = self._thread(tid)
        n_pages = as_int(n_pages, "n_pages")
        if n_pages < 0:
            raise ValueError(f"n_pages {n_pages} is negative")
        n_try = min(n_pages, int(self.free.sum()))    # no more can be allocated
        self.pt.reserve(blocks=0, frames=n_try)
        pol_id = self.policies.intern(th.policy)
        self._sync_policies()
        il = np.array([th.il_prev, th.il_weight], np.int64)
        frames = np.empty(n_try, np.int64)
        done = alloc_pages_task(self.st, pol_id, th.cpu, il, frames)
        th.il_prev, th.il_weight = int(il[0]), int(il[1])
        self._page_cache.extend(frames[:done].tolist())
        nodes = self.pt.frames["node"][frames[:done]].astype(np.int64)
        if done < n_pages:
            raise_errno(errno.ENOMEM, f"page cache: no memory after {done} of {n_pages} pages")
        return nodes

    def drop_caches(self):
        """echo 1 > /proc/sys/vm/drop_caches: every page-cache page is freed."""
        frames = np.array(self._page_cache, np.int64)
        self._page_cache.clear()
        release_frames(self.st, frames)

    # ------------------------------------------------------------------ migration
    def _caller(self, caller, target):
        return target if caller is None else self._proc(caller)

    def _may_access(self, caller, target):
        if caller.uid != target.uid and not caller.cap_sys_nice:
            raise_errno(errno.EPERM, f"process {caller.pid} (uid {caller.uid}) may not access "
                                     f"process {target.pid} (uid {target.uid})")

    def move_pages(self, pid, addrs, nodes=None, flags=0, *, caller=None):
        """move_pages(2): with ``nodes`` None, query; else move each page to its node.

        Returns the per-page status array (node, or -errno). ENODEV (a target without
        memory) and ENOMEM (a full target) fail the call after earlier runs moved, as Linux.
        """
        flags = as_int(flags, "flags")
        if flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) or flags < 0:
            raise_errno(errno.EINVAL, f"move_pages flags {flags:#x} outside MPOL_MF_MOVE|"
                                      f"MPOL_MF_MOVE_ALL")
        pid = as_int(pid, "pid")
        caller_p = self._caller(caller, self.procs.get(pid)) if caller is not None else None
        if flags & MPOL_MF_MOVE_ALL and caller_p is not None and not caller_p.cap_sys_nice:
            raise_errno(errno.EPERM, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
        target = self._proc(pid)
        caller_p = caller_p or target
        if flags & MPOL_MF_MOVE_ALL and not caller_p.cap_sys_nice:
            raise_errno(errno.EPERM, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
        self._may_access(caller_p, target)
        vpns = _vpn_array(addrs)
        status = np.full(vpns.size, MOVE_PAGES_UNWRITTEN, np.int64)
        blocks = self.pt.blocks_of(target.asid)
        pmds = self.pt.pmds_of(blocks)
        vmas = self._kernel_vmas(target)
        if nodes is None:
            pages_stat(self.st, vmas, blocks, pmds, vpns, status)
            return status
        targets = _node_array(nodes, vpns.size)
        cpu = self._main_thread(caller_p).cpu
        self._reserve_thp_splits()
        err = do_pages_move(self.st, vmas, target.asid, blocks, pmds, vpns, targets,
                            bool(flags & MPOL_MF_MOVE_ALL), cpu, status,
                            self.topology.n_nodes)
        if err < 0:
            raise_errno(-err, "move_pages: " + ("a target node has no memory"
                                                if -err == errno.ENODEV else
                                                "a target node is full"))
        return status

    def migrate_pages(self, pid, old_nodes, new_nodes, *, caller=None):
        """migrate_pages(2): move the pages of ``pid`` on old_nodes to new_nodes by
        node_remap. Returns the number of pages not moved. ENOMEM (a destination full)
        fails the call with the sources before it already moved, as Linux."""
        old = get_nodes(old_nodes)
        new = get_nodes(new_nodes)
        target = self._proc(pid)
        caller_p = self._caller(caller, target)
        self._may_access(caller_p, target)
        if new & ~self._memory_mask and not caller_p.cap_sys_nice:
            raise_errno(errno.EPERM, "new_nodes outside the target's allowed nodes and no "
                                     "CAP_SYS_NICE")
        new &= self._memory_mask
        if not new:
            raise_errno(errno.EINVAL, "new_nodes has no node with memory")
        move_all = caller_p.cap_sys_nice
        cpu = self._main_thread(caller_p).cpu
        vmas = self._kernel_vmas(target)
        not_moved = 0
        for source, dest in _remap_pairs(old, new):
            if source >= self.topology.n_nodes:
                continue
            blocks = self.pt.blocks_of(target.asid)
            frames = np.empty(len(blocks) * 512, np.int64)
            vpns = np.empty(len(blocks) * 512, np.int64)
            n = queue_node_folios(self.st, blocks, source, move_all, frames, vpns)
            if not n:
                continue
            self._reserve_thp_splits(frames[:n])
            err = migrate_folios(self.st, vmas, target.asid, frames[:n], vpns[:n],
                                 TARGET_NODE, dest, cpu)
            if err < 0:
                raise_errno(-err, f"migrate_pages: node {dest} is full (nodes before it "
                                  f"were migrated)")
            not_moved += err
        return min(not_moved, (1 << 31) - 1)


def _next_node_in(node, mask):
    """next_node_in: the next set bit after node, wrapping."""
    ids = mask_nodes(mask)
    for n in ids:
        if n > node:
            return n
    return ids[0]


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


def _vpn_array(addrs):
    arr = np.asarray(addrs)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError("addrs must be an int or a 1-D array of integer addresses")
    big = (arr < 0) | (arr >= (1 << 47)) if arr.size else np.zeros(0, bool)
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
