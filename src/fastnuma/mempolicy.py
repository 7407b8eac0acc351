"""Memory policies (mm/mempolicy.c): mbind(2), set_mempolicy(2), get_mempolicy(2).
Each validates in Linux's order (raising OSError with Linux's errno before touching
anything), then mutates; nodemasks and mpol_new are in policy.py."""
from __future__ import annotations

import errno
from dataclasses import replace

import numpy as np

from .constants import (MAX_MASK_NODES, MAX_NUMNODES, MAX_SIM_NODES, MPOL_DEFAULT,
                        MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED, MPOL_F_MOF, MPOL_F_NODE,
                        MPOL_INTERLEAVE, MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL,
                        MPOL_MF_STRICT, MPOL_MF_VALID, MPOL_MODE_FLAGS, MPOL_NOOP,
                        MPOL_WEIGHTED_INTERLEAVE, PAGE_SHIFT, PAGE_SIZE, SEED_MPOL_NOOP)
from .constants import PROT_READ
from .dtypes import PTRS_PER_PMD_SHIFT, T_ACC_LOCAL, T_ACC_REMOTE
from .errors import bad_output, raise_errno
from .kernels.alloc import next_node_in
from .kernels.state import find_block
from .policy import as_int, get_nodes, mask_nodes, mpol_new, sanitize_mpol_flags


class Mempolicy:
    """mbind(2), set_mempolicy(2), get_mempolicy(2) over the machine."""

    def __init__(self, machine, mm, migrate, numab, memory, stats):
        self.m = machine
        self.mm = mm
        self.migrate = migrate
        self.numab = numab
        self.memory = memory
        self.stats = stats

    # ------------------------------------------------------------------ mbind
    def mbind(self, pid, addr, length, mode, nodemask=None, flags=0, *, maxnode=None,
              tid=None):
        """mbind(2) on process ``pid`` by its thread ``tid`` (default: the leader).

        Checks run in kernel_mbind/do_mbind order (docs/linux-semantics.md §2.1). On failure
        nothing changes, except as in Linux: a VMA split beyond vm.max_map_count (ENOMEM)
        leaves the VMAs before it with the new policy, and STRICT with MOVE/MOVE_ALL gives
        EIO **after** the policy was applied and the movable pages were moved.
        MPOL_MF_LAZY (unless ``linux_strict_flags``) is validated and stored: the policy gets
        MPOL_F_MOF, no page is checked or moved during the call (docs/linux-semantics.md §2.5).
        """
        m = self.m
        proc = m.proc(pid)
        th = m.caller_thread(proc, tid)
        noop = self._is_noop(mode)
        mode, mode_flags = (MPOL_NOOP, 0) if noop else sanitize_mpol_flags(mode)
        user_mask = get_nodes(nodemask, maxnode)
        flags = as_int(flags, "flags")
        valid = MPOL_MF_VALID if m.config.linux_strict_flags else MPOL_MF_VALID | MPOL_MF_LAZY
        if flags & ~valid or flags < 0:
            raise_errno(errno.EINVAL, f"mbind flags {flags:#x} outside {valid:#x}")
        if flags & MPOL_MF_MOVE_ALL and not proc.cap_sys_nice:
            raise_errno(errno.EPERM, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
        if mode == MPOL_DEFAULT or noop:        # nothing to check pages against
            flags &= ~MPOL_MF_STRICT
        lo, hi = self.mm.user_range(addr, length, allow_zero=True, task_size=False)
        if lo == hi:
            return
        if noop:
            if user_mask:
                raise_errno(errno.EINVAL, "MPOL_NOOP with a non-empty node mask")
            new = None
        else:
            new = mpol_new(mode, mode_flags, user_mask, m.memory_mask)
        lazy = bool(flags & MPOL_MF_LAZY)
        if lazy and new is not None:
            new = replace(new, flags=new.flags | MPOL_F_MOF)
        if not proc.vmas.overlapping(lo, hi):
            raise_errno(errno.EFAULT, f"no mapping in {addr:#x}-{hi << PAGE_SHIFT:#x}")
        gap = None if mode == MPOL_DEFAULT and not lazy else proc.vmas.first_gap(lo, hi)
        if not lazy and flags & MPOL_MF_STRICT and not flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
            n, _, vpns = self.migrate.queue(proc, lo, hi, user_mask, flags)
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
            self.numab.mark_range(proc, lo, hi, m.topology.cpu_node[th.cpu])
        if noop:
            return
        self._mbind_range(proc, lo, hi, new)
        if lazy or not flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
            return
        n, frames, vpns = self.migrate.queue(proc, lo, hi, user_mask, flags)
        if not n:
            return
        pol_id = m.policies.intern(new if new is not None else th.policy)
        rc = self.migrate.migrate_to_policy(proc, frames[:n], vpns[:n], pol_id, th.cpu)
        if rc and flags & MPOL_MF_STRICT:
            raise_errno(errno.EIO, "MPOL_MF_STRICT: some pages could not be moved (policy "
                                   "applied, the others moved)")

    def _is_noop(self, mode):
        """MPOL_NOOP (fastnuma's 0x100, or the seed's 5 with ``noop_mode``); a mode flag
        with it is EINVAL. Never with ``linux_strict_flags``."""
        m = self.m
        mode = as_int(mode, "mode")
        base = mode & ~MPOL_MODE_FLAGS
        if m.config.linux_strict_flags or not (
                base == MPOL_NOOP or (m.config.noop_mode and base == SEED_MPOL_NOOP)):
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
                for other in self.m.procs.values():
                    other.vmas.changed()

    # ------------------------------------------------------------------ task policy
    def set_mempolicy(self, tid, mode, nodemask=None, *, maxnode=None):
        """set_mempolicy(2) for thread ``tid``; MPOL_DEFAULT removes its policy."""
        m = self.m
        th = m.thread(tid)
        mode, mode_flags = sanitize_mpol_flags(mode)
        user_mask = get_nodes(nodemask, maxnode)
        new = mpol_new(mode, mode_flags, user_mask, m.memory_mask)
        th.policy = new
        if new is not None and new.mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
            th.il_prev, th.il_weight = MAX_NUMNODES - 1, 0

    def get_mempolicy(self, tid, addr=0, flags=0, *, maxnode=None, mode=None,
                      nodemask=None):
        """get_mempolicy(2) by thread ``tid``: ``(mode, frozenset(nodes))``, or the node
        (an int) with MPOL_F_NODE. NODE|ADDR takes a read fault at addr, as lookup_node does
        (an unpopulated private page maps the zero page: node 0). As in Linux, a maxnode
        too large to copy out (maxnode-1 > 32768) fails with EINVAL last, after that fault
        took effect. ``mode``/``nodemask`` BAD_ADDRESS: kernel_get_mempolicy's put_user of
        the mode, then copy_nodes_to_user, fail with EFAULT after do_get_mempolicy (and
        its fault) took effect; maxnode 1 copies no byte of the mask (no EFAULT)."""
        m = self.m
        th = m.thread(tid)
        addr = as_int(addr, "addr")
        flags = as_int(flags, "flags")
        bad_mode, bad_mask = bad_output(mode, "mode"), bad_output(nodemask, "nodemask")
        if maxnode is not None and as_int(maxnode, "maxnode") < m.topology.n_nodes:
            raise_errno(errno.EINVAL, f"maxnode {maxnode} is below the number of nodes "
                                      f"({m.topology.n_nodes})")
        result = self._do_get_mempolicy(th, addr, flags)
        if bad_mode:                                # put_user(pval, policy)
            raise_errno(errno.EFAULT, "get_mempolicy: mode cannot be written (BAD_ADDRESS)")
        if maxnode is not None and maxnode - 1 > MAX_MASK_NODES:   # copy_nodes_to_user, last
            raise_errno(errno.EINVAL, f"maxnode {maxnode}: more than a page of node mask")
        if bad_mask and maxnode != 1:               # copy_to_user of ALIGN(maxnode-1, 64)/8
            raise_errno(errno.EFAULT, "get_mempolicy: nodemask cannot be written "
                                      "(BAD_ADDRESS)")
        return result

    def _do_get_mempolicy(self, th, addr, flags):
        """do_get_mempolicy (after kernel_get_mempolicy's maxnode check)."""
        m = self.m
        if flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED) or flags < 0:
            raise_errno(errno.EINVAL, f"get_mempolicy flags {flags:#x} unknown")
        if flags & MPOL_F_MEMS_ALLOWED:
            if flags & (MPOL_F_NODE | MPOL_F_ADDR):
                raise_errno(errno.EINVAL, "MPOL_F_MEMS_ALLOWED with MPOL_F_NODE or MPOL_F_ADDR")
            return 0, frozenset(mask_nodes(m.memory_mask))
        pol = th.policy
        if flags & MPOL_F_ADDR:
            v = m.procs[th.pid].vmas.find(addr >> PAGE_SHIFT) if addr >= 0 else None
            if v is None:
                raise_errno(errno.EFAULT, f"no mapping at {addr:#x}")
            pol = v.effective_policy(addr >> PAGE_SHIFT)
        elif addr:
            raise_errno(errno.EINVAL, f"address {addr:#x} given without MPOL_F_ADDR")
        if flags & MPOL_F_NODE:
            if flags & MPOL_F_ADDR:
                if not v.prot & PROT_READ:      # GUP's check_vma_flags: no VM_READ
                    raise_errno(errno.EFAULT, f"mapping at {addr:#x} is not readable")
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
        m = self.m
        page = addr & ~(PAGE_SIZE - 1)
        if not self.stats.page_flags(th.pid, page, PAGE_SIZE)[0]:
            acc = m.tasks[th.slot, T_ACC_LOCAL:T_ACC_REMOTE + 1].copy()
            b = find_block(m.st, m.procs[th.pid].asid, page >> (PAGE_SHIFT + PTRS_PER_PMD_SHIFT))
            pmd_mark = m.pt.blk_numa[b] if b >= 0 else 0
            if b >= 0:
                m.pt.blk_numa[b] = 0          # the seed's PMD mark is read through too
            m.scratch_counts[:] = 0
            self.memory.touch(th, np.array([addr], np.int64), np.zeros(1, np.uint8))
            if b >= 0:
                m.pt.blk_numa[b] = pmd_mark
            m.tasks[th.slot, T_ACC_LOCAL:T_ACC_REMOTE + 1] = acc   # not an access
        return int(self.stats.page_nodes(th.pid, page, PAGE_SIZE)[0])



def _next_node_in(node, mask):
    """next_node_in over a policy's nodes (kernels/alloc.py has the rule); il_prev may be
    MAX_NUMNODES-1 (after set_mempolicy), which wraps to the first node."""
    return int(next_node_in(min(node, MAX_SIM_NODES - 1), np.uint64(mask)))
