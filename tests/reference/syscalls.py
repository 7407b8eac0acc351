"""The NUMA system calls of the reference model: mbind, set_mempolicy, get_mempolicy,
move_pages, migrate_pages (linux-semantics.md §2, §3; Linux mm/mempolicy.c, mm/migrate.c).
"""
import errno
from dataclasses import replace

import numpy as np

from fastnuma.constants import (MAX_NUMNODES, MPOL_DEFAULT, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED,
                                MPOL_F_MOF, MPOL_F_NODE, MPOL_F_RELATIVE_NODES,
                                MPOL_F_STATIC_NODES, MPOL_INTERLEAVE, MPOL_LOCAL,
                                MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT,
                                MPOL_MF_VALID, MPOL_MODE_FLAGS, MPOL_WEIGHTED_INTERLEAVE,
                                PAGE_SHIFT, PAGE_SIZE, PROT_READ, TASK_SIZE)
from fastnuma import constants as _constants
from fastnuma.errors import BAD_ADDRESS, raise_errno

from .fault import OomError
from .migrate import MPOL_MF_DISCONTIG_OK, MPOL_MF_INVERT
from .policy import (INTERLEAVE_MODES, U64, as_int, get_nodes, mpol_equal, mpol_new,
                     mpol_set_nodemask, next_node_in, node_remap, sanitize_mpol_flags)
from .vm import page_align

INT_MAX = (1 << 31) - 1
MPOL_NOOP = getattr(_constants, "MPOL_NOOP", 0x100)    # docs/lazy-migration.md §1
SEED_MPOL_NOOP = 5                                     # the 2012 series' MPOL_NOOP
MOVE_PAGES_UNWRITTEN = -(1 << 31)
"""fastnuma choice: the status of a page that move_pages leaves unwritten (Linux leaves the
user's buffer as it was) when the call returns a positive count."""


class SyscallMixin:
    # ------------------------------------------------------------ mbind (§2)
    def mbind(self, pid, addr, length, mode, nodemask=None, flags=0, *, maxnode=None,
              tid=None):
        """§2.1 do_mbind, steps in order, by thread ``tid`` of ``pid`` (default its first
        thread): sanitize_mpol_flags, get_nodes, flags outside MPOL_MF_VALID (LAZY accepted
        unless linux_strict_flags), MOVE_ALL without CAP_SYS_NICE (EPERM), unaligned start,
        DEFAULT drops STRICT, len rounding / wrap (EINVAL) / empty (return) (no
        TASK_SIZE check: what lies beyond is a hole), mpol_new,
        mpol_set_nodemask, queue_pages_range (EFAULT/EIO, nothing changed), mbind_range
        VMA by VMA (ENOMEM partial), migration of the queued folios under the new policy
        (§2.4), EIO with STRICT when anything could not be queued or moved.

        MPOL_NOOP (docs/lazy-migration.md §1, §4; mode 5 too with noop_mode): a mode flag
        is EINVAL where sanitize_mpol_flags checks the mode, a non-empty mask is EINVAL
        where mpol_new checks DEFAULT's; no policy object, the VMAs' policies stay; without
        LAZY only the hole check of the lazy path runs (EFAULT), nothing changes.

        MPOL_MF_LAZY (§2.5, docs/lazy-migration.md §4): the new policy gets MPOL_F_MOF
        (not DEFAULT/NOOP: no policy object); holes are EFAULT for every mode (validated
        before anything is marked); change_prot_numa over the range as the calling
        thread; no page is examined, queued or moved (STRICT never gives EIO); then the
        policy is applied (not for NOOP).
        """
        proc = self.get_proc(pid)
        thread = self.caller_thread(proc, tid)
        noop = self.is_mpol_noop(mode)
        if noop:
            mode_flags = 0
        else:
            mode, mode_flags = sanitize_mpol_flags(mode)
        user_nodes = get_nodes(nodemask, maxnode)
        flags = as_int(flags, "flags")
        addr = as_int(addr, "addr")
        length = as_int(length, "length")
        valid = MPOL_MF_VALID if self.linux_strict_flags else MPOL_MF_VALID | MPOL_MF_LAZY
        if flags < 0 or flags & ~valid:
            raise_errno(errno.EINVAL, f"mbind flags {flags:#x} outside {valid:#x}")
        if flags & MPOL_MF_MOVE_ALL and not proc.cap_sys_nice:
            raise_errno(errno.EPERM, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
        if addr < 0 or addr > U64 or addr & (PAGE_SIZE - 1):
            raise_errno(errno.EINVAL, f"mbind start {addr:#x} not page aligned")
        if noop or mode == MPOL_DEFAULT:
            flags &= ~MPOL_MF_STRICT
        end = (addr + page_align(length)) & U64
        if end < addr:
            raise_errno(errno.EINVAL, "mbind range wraps around")
        if end == addr:
            return None
        if noop:
            if user_nodes:
                raise_errno(errno.EINVAL, "MPOL_NOOP with a non-empty nodemask")
            new = None
        else:
            new = mpol_new(mode, mode_flags, user_nodes)
            new = mpol_set_nodemask(new, user_nodes, self.memory_nodes)
        lo, hi = addr >> PAGE_SHIFT, end >> PAGE_SHIFT
        if flags & MPOL_MF_LAZY:
            return self.mbind_lazy(proc, thread, lo, hi, new, noop)
        if noop:
            self.check_no_holes(proc, lo, hi)
            return None
        if new is None:
            flags |= MPOL_MF_DISCONTIG_OK
        err, queued, nr_failed = self.queue_pages_range(proc, lo, hi, user_nodes,
                                                        flags | MPOL_MF_INVERT)
        if err:
            raise_errno(-err, "mbind: " + ("a hole in the range" if err == -errno.EFAULT
                                           else "a page on a node outside the mask"))
        err = 0
        try:
            self.mbind_range(proc, lo, hi, new)
        except OSError as e:
            err = e.errno
        if not err and queued:
            # fastnuma splits a THP with its PMD mapping (docs/api.md), so the folios queued
            # before mbind_range may have been split at the range's edges: queue again
            _, queued, nr_failed = self.queue_pages_range(proc, lo, hi, user_nodes,
                                                          flags | MPOL_MF_INVERT)
            nr_failed |= self.mbind_migrate(proc, thread, lo, hi, new, queued)
        if nr_failed and flags & MPOL_MF_STRICT:
            err = errno.EIO
        if err:
            raise_errno(err, "mbind")
        return None

    def is_mpol_noop(self, mode):
        """MPOL_NOOP (0x100), or the seed's 5 with noop_mode, with or without mode flags;
        a mode flag with it is EINVAL. linux_strict_flags: never (Linux has no NOOP)."""
        mode = as_int(mode, "mode")
        base = mode & ~MPOL_MODE_FLAGS
        if self.linux_strict_flags:
            return False
        if base != MPOL_NOOP and not (self.noop_mode and base == SEED_MPOL_NOOP):
            return False
        if mode & MPOL_MODE_FLAGS:
            raise_errno(errno.EINVAL, "MPOL_NOOP takes no mode flags")
        return True

    def check_no_holes(self, proc, lo, hi):
        """docs/lazy-migration.md §4: no VMA in [lo, hi), or a hole before, between or
        after the VMAs there -> EFAULT (queue_pages_range's checks without
        DISCONTIG_OK)."""
        err, _, _ = self.queue_pages_range(proc, lo, hi, frozenset(), MPOL_MF_INVERT)
        if err:
            raise_errno(-err, "a hole in the range")

    def mbind_lazy(self, proc, thread, lo, hi, new, noop):
        """docs/lazy-migration.md §4 / spec §2.5: holes first (EFAULT, nothing marked);
        the new policy gets MPOL_F_MOF; change_prot_numa over [lo, hi) with the caller's
        node; then mbind_range (not for NOOP; its ENOMEM keeps the marks)."""
        self.check_no_holes(proc, lo, hi)
        if new is not None:
            new = replace(new, flags=new.flags | MPOL_F_MOF)
        self.change_prot_numa_range(proc, lo, hi, self.cpu_node[thread.cpu])
        if not noop:
            self.mbind_range(proc, lo, hi, new)
        return None

    def mbind_range(self, proc, lo, hi, new):
        """§2.3 (mbind_range + vma_replace_policy): VMA by VMA, skip a VMA whose policy is
        already equal; else split/merge (vma_modify) and set the policy, for shared memory
        also in the object's tree over the VMA's page offsets. ENOMEM (split beyond
        max_map_count) propagates with the earlier VMAs changed."""
        cur = lo
        while cur < hi:
            vma = next((v for v in proc.vmas if v.end > cur and v.start < hi), None)
            if vma is None:
                break
            vmstart, vmend = max(cur, vma.start), min(hi, vma.end)
            if not mpol_equal(vma.policy, new):
                vma = self.vma_modify(proc, vma, vmstart, vmend, policy=new)
                vma.policy = new
                if vma.obj is not None:
                    vma.obj.replace(vma.pgoff, vma.pgoff + (vma.end - vma.start), new)
            cur = vmend

    def mbind_migrate(self, proc, thread, lo, hi, new, queued):
        """§2.4 (do_mbind + alloc_migration_target_by_mpol): each queued folio is moved to
        a page allocated under the new policy (DEFAULT: the task or system policy) as a
        fault would, with the calling thread's CPU; (weighted) interleave takes its index
        base from the first queued folio's address, so each folio gets the node it would
        have had at fault time. No same-node check. Returns migrate_pages' result."""
        pol = new if new is not None else self.get_task_policy(thread)
        base = 0
        if pol.mode in INTERLEAVE_MODES:
            folio = queued[0]
            for vma in proc.overlapping(lo, hi):
                vpn = vma.start + (folio.index - vma.pgoff)
                if folio.obj is vma.obj and vma.start <= vpn < vma.end:
                    _, ilx = self.get_vma_policy(thread, vma, vpn, folio.order)
                    base = ilx - (folio.index >> self.ilx_shift(folio.order))
                    break

        def target(folio):
            ilx = (base + (folio.index >> self.ilx_shift(folio.order))) & U64
            return self.alloc_pages_mpol(pol, folio.order, ilx, thread, True)

        return self.mm_migrate_pages(queued, target)

    # ------------------------------------------------------------ set/get_mempolicy (§3)
    def set_mempolicy(self, tid, mode, nodemask=None, *, maxnode=None):
        """§3.1 do_set_mempolicy: sanitize_mpol_flags, get_nodes, mpol_new,
        mpol_set_nodemask; the thread's policy is replaced (DEFAULT removes it) and a
        (weighted) interleave policy resets il_prev = MAX_NUMNODES-1, il_weight = 0."""
        thread = self.get_thread(tid)
        mode, mode_flags = sanitize_mpol_flags(mode)
        user_nodes = get_nodes(nodemask, maxnode)
        new = mpol_new(mode, mode_flags, user_nodes)
        new = mpol_set_nodemask(new, user_nodes, self.memory_nodes)
        thread.policy = new
        if new is not None and new.mode in INTERLEAVE_MODES:
            thread.il_prev, thread.il_weight = MAX_NUMNODES - 1, 0
        return None

    def lookup_node(self, thread, proc, vma, addr):
        """lookup_node: get_user_pages_fast(addr) read-faults the page in (the zero page
        for unpopulated private anonymous memory, pgfault counted) and returns its node.
        GUP's check_vma_flags: a VMA without VM_READ gives EFAULT."""
        if not vma.prot & PROT_READ:
            raise_errno(errno.EFAULT, f"mapping at {addr:#x} is not readable")
        vpn = addr >> PAGE_SHIFT
        try:
            self.handle_mm_fault(thread, proc, vma, vpn, False)
        except OomError:
            self.oom_kill(proc)
        folio, _ = proc.entry(vpn)
        return folio.node

    def get_mempolicy(self, tid, addr=0, flags=0, *, maxnode=None, mode=None, nodemask=None):
        """§3.2 kernel_get_mempolicy / do_get_mempolicy, by thread ``tid``: maxnode given
        and < nr_node_ids -> EINVAL; unknown flags, MEMS_ALLOWED with NODE or ADDR,
        addr != 0 without ADDR -> EINVAL; no VMA at addr -> EFAULT. Returns
        (mode | mode flags, frozenset(nodes)) -- the user mask for STATIC/RELATIVE, else
        the effective nodes, empty for LOCAL/DEFAULT -- or an int node for MPOL_F_NODE.
        ADDR never falls back to the task policy. The copy-out check (maxnode-1 > 32768 ->
        EINVAL) runs last, after a NODE|ADDR lookup took effect, as in Linux. ``mode`` /
        ``nodemask`` BAD_ADDRESS: unwritable outputs (copy_out)."""
        ptrs = (self.out_pointer(mode, "mode"), self.out_pointer(nodemask, "nodemask"))
        thread = self.get_thread(tid)
        proc = self.procs[thread.pid]
        addr = as_int(addr, "addr")
        flags = as_int(flags, "flags")
        if maxnode is not None:
            maxnode = as_int(maxnode, "maxnode")
            if maxnode < self.n_nodes:
                raise_errno(errno.EINVAL, f"maxnode {maxnode} < nr_node_ids")
        if flags < 0 or flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED):
            raise_errno(errno.EINVAL, f"get_mempolicy flags {flags:#x}")
        if flags & MPOL_F_MEMS_ALLOWED:
            if flags & (MPOL_F_NODE | MPOL_F_ADDR):
                raise_errno(errno.EINVAL, "MPOL_F_MEMS_ALLOWED with NODE or ADDR")
            result = (0, frozenset(self.memory_nodes))
            return self.copy_out(maxnode, ptrs, result)
        if flags & MPOL_F_ADDR:
            vma = proc.find_vma(addr >> PAGE_SHIFT) if 0 <= addr <= U64 else None
            if vma is None:
                raise_errno(errno.EFAULT, f"no mapping at {addr:#x}")
            if vma.obj is not None:
                pol = vma.obj.lookup(vma.pgoff_at(addr >> PAGE_SHIFT))
            else:
                pol = vma.policy
        elif addr:
            raise_errno(errno.EINVAL, "addr given without MPOL_F_ADDR")
        else:
            pol = thread.policy
        if flags & MPOL_F_NODE:
            if flags & MPOL_F_ADDR:
                result = self.lookup_node(thread, proc, vma, addr)
            elif pol is not None and pol is thread.policy and pol.mode == MPOL_INTERLEAVE:
                result = next_node_in(thread.il_prev, pol.nodes)
            elif (pol is not None and pol is thread.policy
                  and pol.mode == MPOL_WEIGHTED_INTERLEAVE):
                result = (thread.il_prev if thread.il_weight
                          else next_node_in(thread.il_prev, pol.nodes))
            else:
                raise_errno(errno.EINVAL, "MPOL_F_NODE without ADDR needs an interleave "
                                          "task policy")
            return self.copy_out(maxnode, ptrs, result)
        if pol is None:
            return self.copy_out(maxnode, ptrs, (MPOL_DEFAULT, frozenset()))
        mode = pol.mode | (pol.flags & MPOL_MODE_FLAGS)
        if pol.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            nodes = pol.user_nodes
        elif pol.mode == MPOL_LOCAL:
            nodes = frozenset()
        else:
            nodes = pol.nodes
        return self.copy_out(maxnode, ptrs, (mode, frozenset(nodes)))

    @staticmethod
    def out_pointer(value, name):
        """An output pointer: None (returned) or BAD_ADDRESS (True: cannot be written)."""
        if value is not None and value is not BAD_ADDRESS:
            raise TypeError(f"{name} must be None or fastnuma.BAD_ADDRESS")
        return value is BAD_ADDRESS

    def copy_out(self, maxnode, ptrs, result):
        """kernel_get_mempolicy after do_get_mempolicy: put_user of the mode (EFAULT when
        it cannot be written), then copy_nodes_to_user: EINVAL for more than a page of
        mask, else EFAULT for an unwritable mask -- unless maxnode is 1 (0 bytes)."""
        if ptrs[0]:
            raise_errno(errno.EFAULT, "get_mempolicy: mode")
        self.copy_nodes_to_user(maxnode, result)
        if ptrs[1] and maxnode != 1:
            raise_errno(errno.EFAULT, "get_mempolicy: nodemask")
        return result

    @staticmethod
    def copy_nodes_to_user(maxnode, result):
        """copy_nodes_to_user: more than a page of mask -> EINVAL."""
        if maxnode is not None and maxnode - 1 > 8 * PAGE_SIZE:
            raise_errno(errno.EINVAL, f"maxnode {maxnode}: more than a page of mask")
        return result

    # ------------------------------------------------------------ move_pages (§3.3)
    def caller_process(self, caller, target_pid):
        return self.get_proc(target_pid if caller is None else caller)

    def may_access(self, caller, target):
        """fastnuma's ptrace check: another uid without CAP_SYS_NICE -> EPERM."""
        if caller.uid != target.uid and not caller.cap_sys_nice:
            raise_errno(errno.EPERM, f"process {caller.pid} may not access {target.pid}")

    def add_folio_for_migration(self, proc, addr, node, pagelist, isolated, migrate_all):
        """add_folio_for_migration: -EFAULT (no VMA, zero page), -ENOENT (nothing mapped),
        0 (already on the node), -EACCES (shared without MOVE_ALL), -EBUSY (already
        isolated, e.g. listed twice in the run), 1 (queued)."""
        vpn = addr >> PAGE_SHIFT if 0 <= addr <= U64 else -1
        if vpn < 0 or proc.find_vma(vpn) is None:
            return -errno.EFAULT
        folio, _ = proc.entry(vpn)
        if folio is None:
            return -errno.ENOENT
        if folio.is_zero:
            return -errno.EFAULT
        if folio.node == node:
            return 0
        if folio.maybe_mapped_shared() and not migrate_all:
            return -errno.EACCES
        if id(folio) in isolated:
            return -errno.EBUSY
        isolated.add(id(folio))
        pagelist.append(folio)
        return 1

    def do_pages_stat(self, proc, addrs):
        """do_pages_stat_array: node, -EFAULT (no VMA, zero page), -ENOENT (not mapped);
        nothing is faulted in."""
        status = np.empty(len(addrs), np.int64)
        for i, addr in enumerate(addrs):
            vpn = addr >> PAGE_SHIFT if 0 <= addr <= U64 else -1
            if vpn < 0 or proc.find_vma(vpn) is None:
                status[i] = -errno.EFAULT
                continue
            folio, _ = proc.entry(vpn)
            if folio is None:
                status[i] = -errno.ENOENT
            elif folio.is_zero:
                status[i] = -errno.EFAULT
            else:
                status[i] = folio.node
        return status

    def do_pages_move(self, proc, caller_thread, addrs, nodes, migrate_all, writable=True):
        """§3.3 do_pages_move: runs of equal target; a target < 0, >= MAX_NUMNODES or
        without memory ends the call with -ENODEV after the pending run moved (a target
        outside the cpuset, -EACCES, cannot happen: no cpusets); each run moves with
        __GFP_THISNODE when the target changes, at a page that is not queued, and at the
        end. A run that fails partly returns failures + pages not yet examined, its
        statuses unwritten; -ENOMEM (target full) is the call's error. ``writable``
        False (status BAD_ADDRESS): every store_status fails with -EFAULT.
        Returns (err, status)."""
        n = len(addrs)
        status = np.full(n, MOVE_PAGES_UNWRITTEN, np.int64)
        run = {"node": None, "start": 0, "list": [], "isolated": set()}

        def flush(i):
            """move_pages_and_store_status."""
            pagelist, node = run["list"], run["node"]
            if not pagelist:
                return 0
            run["list"], run["isolated"] = [], set()
            cpu_node = self.cpu_node[caller_thread.cpu]

            def target(folio):
                return self.alloc_pages_nodemask(folio.order, node, None, cpu_node,
                                                 thisnode=True)

            err = self.mm_migrate_pages(pagelist, target)
            if err:
                if err > 0:
                    err += n - i
                return err
            return store(run["start"], i, node)

        def store(lo, hi, value):
            """store_status: copy_to_user of status[lo:hi]."""
            if not writable:
                return -errno.EFAULT
            status[lo:hi] = value
            return 0

        err, i = 0, 0
        while i < n:
            node = nodes[i]
            if node < 0 or node >= MAX_NUMNODES or node not in self.memory_nodes:
                err = -errno.ENODEV
                break
            if run["node"] is None:
                run["node"], run["start"] = node, i
            elif node != run["node"]:
                err = flush(i)
                if err:
                    return err, status
                run["node"], run["start"] = node, i
            err = self.add_folio_for_migration(proc, addrs[i], run["node"], run["list"],
                                               run["isolated"], migrate_all)
            if err > 0:
                i += 1
                continue
            err = store(i, i + 1, err if err else run["node"])
            if err:
                break                              # out_flush
            err = flush(i)
            if err:
                return (err - 1 if err > 0 else err), status
            run["node"] = None
            i += 1
        err1 = flush(i)
        if err >= 0:
            err = err1
        return err, status

    def move_pages(self, pid, addrs, nodes=None, flags=0, *, caller=None, status=None,
                   nr_pages=None):
        """§3.3 kernel_move_pages: flags outside MOVE|MOVE_ALL -> EINVAL; MOVE_ALL without
        the caller's CAP_SYS_NICE -> EPERM; unknown pid -> ESRCH; another uid without
        CAP_SYS_NICE -> EPERM; then query (nodes None) or move. Returns the int64 status
        array (a positive Linux return leaves some statuses MOVE_PAGES_UNWRITTEN);
        ENODEV/ENOMEM raise after the earlier runs moved. BAD_ADDRESS: ``addrs`` or
        ``nodes`` cannot be read (get_user fails at the first page: EFAULT), ``status``
        cannot be written (the first store_status fails: EFAULT). ``nr_pages``: the
        count (default: len(addrs); with addrs BAD_ADDRESS len(nodes), else 1)."""
        flags = as_int(flags, "flags")
        unwritable = self.out_pointer(status, "status")
        if addrs is BAD_ADDRESS:
            bad_in = True
            n = len(nodes) if isinstance(nodes, (list, tuple, np.ndarray, range)) else 1
            n = n if nr_pages is None else as_int(nr_pages, "nr_pages")
            if n < 0:
                raise ValueError("nr_pages is negative")
            addrs = [0] * n
            nodes = None                           # never read: entry 0 faults first
        else:
            addrs = self.int_list(addrs, "addrs")
            if nr_pages is not None and as_int(nr_pages, "nr_pages") != len(addrs):
                raise ValueError("nr_pages must be the number of addrs")
            bad_in = nodes is BAD_ADDRESS
            if bad_in:
                nodes = None
        if nodes is not None:
            if isinstance(nodes, (list, tuple, np.ndarray, range)):
                nodes = self.int_list(nodes, "nodes")
                if len(nodes) != len(addrs):
                    raise ValueError("move_pages: nodes and addrs differ in length")
            else:
                nodes = [as_int(nodes, "nodes")] * len(addrs)
        if flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) or flags < 0:
            raise_errno(errno.EINVAL, f"move_pages flags {flags:#x}")
        caller_p = self.get_proc(caller) if caller is not None else None
        if flags & MPOL_MF_MOVE_ALL and caller_p is not None and not caller_p.cap_sys_nice:
            raise_errno(errno.EPERM, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
        target = self.get_proc(pid)
        caller_p = caller_p or target
        if flags & MPOL_MF_MOVE_ALL and not caller_p.cap_sys_nice:
            raise_errno(errno.EPERM, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
        self.may_access(caller_p, target)
        if bad_in:
            if addrs:
                raise_errno(errno.EFAULT, "move_pages: pages or nodes")
            return np.zeros(0, np.int64)
        if nodes is None:
            out = self.do_pages_stat(target, addrs)
            if unwritable and addrs:
                raise_errno(errno.EFAULT, "move_pages: status")
            return out
        err, status = self.do_pages_move(target, self.threads[caller_p.tids[0]], addrs,
                                         nodes, bool(flags & MPOL_MF_MOVE_ALL),
                                         not unwritable)
        if err < 0:
            raise_errno(-err, "move_pages")
        return status

    # ------------------------------------------------------------ migrate_pages (§3.4)
    def migrate_to_node(self, proc, caller_thread, source, dest, flags):
        """migrate_to_node: queue every folio of the address space on ``source`` (shared
        ones only with MOVE_ALL) and move them with __GFP_THISNODE to ``dest``. Returns
        -errno or the folios not moved."""
        if not proc.vmas:
            return 0
        _, queued, nr_failed = self.queue_pages_range(
            proc, proc.vmas[0].start, TASK_SIZE >> PAGE_SHIFT, frozenset({source}),
            flags | MPOL_MF_DISCONTIG_OK)
        err = 0
        if queued:
            cpu_node = self.cpu_node[caller_thread.cpu]

            def target(folio):
                return self.alloc_pages_nodemask(folio.order, dest, None, cpu_node,
                                                 thisnode=True)

            err = self.mm_migrate_pages(queued, target)
        if err >= 0:
            err += nr_failed
        return err

    def do_migrate_pages(self, proc, caller_thread, old, new, flags):
        """§3.4 do_migrate_pages: pick (source, node_remap(source)) pairs one source at a
        time, ascending, preferring a destination that is not a pending source; with
        |old| != |new| a source inside new is skipped; s == d is skipped. A negative
        result stops the loop."""
        nr_failed, err, tmp = 0, 0, set(old)
        while tmp:
            source, dest = None, 0
            for s in sorted(tmp):
                if len(old) != len(new) and s in new:
                    continue
                d = node_remap(s, old, new)
                if s == d:
                    continue
                source, dest = s, d
                if d not in tmp:
                    break
            if source is None:
                break
            tmp.discard(source)
            err = self.migrate_to_node(proc, caller_thread, source, dest, flags)
            if err > 0:
                nr_failed += err
            if err < 0:
                break
        if err < 0:
            return err
        return min(nr_failed, INT_MAX)

    def migrate_pages(self, pid, old_nodes, new_nodes, *, caller=None):
        """§3.4 kernel_migrate_pages: get_nodes(old), get_nodes(new), ESRCH, EPERM (another
        uid without CAP_SYS_NICE), new outside the nodes with memory without CAP_SYS_NICE
        -> EPERM, new intersected with them empty -> EINVAL; MOVE_ALL with CAP_SYS_NICE,
        else MOVE. Returns the number not moved; ENOMEM raises (earlier sources moved)."""
        old = get_nodes(old_nodes)
        new = get_nodes(new_nodes)
        target = self.get_proc(pid)
        caller_p = self.caller_process(caller, pid)
        self.may_access(caller_p, target)
        if not new <= self.memory_nodes and not caller_p.cap_sys_nice:
            raise_errno(errno.EPERM, "new_nodes outside the allowed nodes")
        new = new & self.memory_nodes
        if not new:
            raise_errno(errno.EINVAL, "new_nodes has no node with memory")
        flags = MPOL_MF_MOVE_ALL if caller_p.cap_sys_nice else MPOL_MF_MOVE
        err = self.do_migrate_pages(target, self.threads[caller_p.tids[0]], old, new, flags)
        if err < 0:
            raise_errno(-err, "migrate_pages")
        return err
