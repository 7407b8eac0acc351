"""Bulk page operations of the memory-policy system calls and fork: mbind with
MPOL_MF_MOVE, move_pages, migrate_pages, fork and the copy-on-write pass after it.

Every timed call changes placement, so each starts from a fresh machine: ``setup`` builds
it (all pages written once, present on node 0) and ``number = 1`` makes asv run setup
again before every timed call. ``track_*_pages_per_s`` take the median of three fresh
machines and check the outcome (pages moved or copied), so a semantic change fails the
benchmark instead of showing up as a speed-up.
"""
import numpy as np

from .common import (PAGE_SHIFT, addresses, median_rate, populated_process, sizes,
                     warm_jit)

import fastnuma as fn

#: Pages of the process moved by mbind / migrate_pages and forked (2**18 pages = 1 GiB).
RANGE_PAGES = sizes([2**18], [2**14])
#: Pages given to one move_pages call.
MOVE_PAGES = sizes([2**16], [2**12])


class _FreshMachine:
    """A populated process per timed call; subclasses define ``_op`` and ``_check``."""
    number = 1
    repeat = (3, 10, 20.0)
    timeout = 300
    warm = ("access",)
    param_names = ["n_pages"]

    def setup(self, n_pages):
        warm_jit(*self.warm)
        self.n_pages = n_pages
        self.machine = self._prepare()

    def _prepare(self):
        sim, pid, base = populated_process(self.n_pages)
        return sim, pid, base

    def _rate(self, n_pages):
        machines = []

        def prepare():
            machines.append(self._prepare())
            return machines[-1]
        rate = median_rate(self._op, n_pages, repeat=3, prepare=prepare)
        self._check(machines[-1])
        return rate

    def _check(self, machine):
        raise NotImplementedError

    def _expect(self, what, got, want):
        if got != want:
            raise RuntimeError(f"semantic drift in {type(self).__name__}: {what} = {got}, "
                               f"expected {want}")


class MbindMove(_FreshMachine):
    """mbind(MPOL_BIND, {1}, MPOL_MF_MOVE) over the whole range: every page moves 0 -> 1."""
    params = RANGE_PAGES
    warm = ("access", "mbind")

    def _op(self, machine):
        sim, pid, base = machine
        sim.mbind(pid, base, self.n_pages << PAGE_SHIFT, fn.MPOL_BIND, {1}, fn.MPOL_MF_MOVE)

    def _check(self, machine):
        self._expect("pgmigrate_success", machine[0].vmstat()["pgmigrate_success"],
                     self.n_pages)

    def time_mbind_move(self, n_pages):
        self._op(self.machine)

    def track_pages_per_s(self, n_pages):
        return self._rate(n_pages)
    track_pages_per_s.unit = "pages/s"


class MovePages(_FreshMachine):
    """move_pages(pid, addrs, 1) of ``n_pages`` pages (all on node 0): one run of equal
    target, every page moves."""
    params = MOVE_PAGES
    warm = ("access", "move_pages")

    def _prepare(self):
        sim, pid, base = populated_process(self.n_pages)
        return sim, pid, addresses(base, np.arange(self.n_pages, dtype=np.int64))

    def _op(self, machine):
        sim, pid, addrs = machine
        self.status = sim.move_pages(pid, addrs, 1)

    def _check(self, machine):
        self._expect("pages with status 1", int((self.status == 1).sum()), self.n_pages)
        self._expect("pgmigrate_success", machine[0].vmstat()["pgmigrate_success"],
                     self.n_pages)

    def time_move_pages(self, n_pages):
        self._op(self.machine)

    def track_pages_per_s(self, n_pages):
        return self._rate(n_pages)
    track_pages_per_s.unit = "pages/s"


class MigratePages(_FreshMachine):
    """migrate_pages(pid, {0}, {1}): every page of the process moves 0 -> 1."""
    params = RANGE_PAGES
    warm = ("access", "migrate_pages")

    def _op(self, machine):
        sim, pid, _ = machine
        sim.migrate_pages(pid, {0}, {1})

    def _check(self, machine):
        self._expect("pgmigrate_success", machine[0].vmstat()["pgmigrate_success"],
                     self.n_pages)

    def time_migrate_pages(self, n_pages):
        self._op(self.machine)

    def track_pages_per_s(self, n_pages):
        return self._rate(n_pages)
    track_pages_per_s.unit = "pages/s"


class Fork(_FreshMachine):
    """fork() of a process with ``n_pages`` present private pages: copy_page_range shares
    every page (mapcount 2, write-protected)."""
    params = RANGE_PAGES
    warm = ("access", "fork")

    def _op(self, machine):
        sim, pid, _ = machine
        sim.fork(pid)

    def _check(self, machine):
        sim, pid, _ = machine
        self._expect("processes", len(sim.pids()), 2)

    def time_fork(self, n_pages):
        self._op(self.machine)

    def track_pages_per_s(self, n_pages):
        return self._rate(n_pages)
    track_pages_per_s.unit = "pages/s"


class ForkCowWrite(_FreshMachine):
    """After fork, the child writes every page once: each write takes a COW fault
    (do_wp_page) that allocates a copy on the child's node."""
    params = RANGE_PAGES
    warm = ("access", "fork")

    def _prepare(self):
        sim, pid, base = populated_process(self.n_pages)
        child = sim.fork(pid)
        return sim, child, addresses(base, np.arange(self.n_pages, dtype=np.int64))

    def _op(self, machine):
        sim, child, addrs = machine
        sim.access(child, addrs, write=True)

    def _check(self, machine):
        sim = machine[0]
        cap = sim.topology.node_pages[0]
        self._expect("free pages on node 0", int(sim.free_pages()[0]),
                     cap - 2 * self.n_pages)

    def time_cow_write_pass(self, n_pages):
        self._op(self.machine)

    def track_pages_per_s(self, n_pages):
        return self._rate(n_pages)
    track_pages_per_s.unit = "pages/s"
