"""The page cache (mm/filemap.c): pages read through a file, allocated with no VMA under
the reading task's policy, and dropped with drop_caches."""
from __future__ import annotations

import errno

import numpy as np

from .errors import raise_errno
from .kernels.alloc import alloc_pages_task
from .kernels.range import release_frames
from .policy import as_int


class Filemap:
    """page_cache_read and drop_caches."""

    def __init__(self, machine):
        self.m = machine

    def page_cache_read(self, tid, n_pages=1):
        """Thread ``tid`` reads ``n_pages`` of an uncached file: page-cache pages are
        allocated with no VMA, under its task policy and no interleave index
        (filemap_alloc_folio), so an interleave task policy takes the per-task round robin
        from its lowest node after set_mempolicy. Returns the nodes, in order. The pages
        stay until :meth:`drop_caches`. Allocation failure raises ENOMEM after the pages
        allocated so far (page cache is reclaimable; no process is killed)."""
        m = self.m
        th = m.thread(tid)
        n_pages = as_int(n_pages, "n_pages")
        if n_pages < 0:
            raise ValueError(f"n_pages {n_pages} is negative")
        n_try = min(n_pages, int(m.free.sum()))    # no more can be allocated
        m.pt.reserve(blocks=0, frames=n_try)
        pol_id = m.policies.intern(th.policy)
        m.sync_policies()
        il = np.array([th.il_prev, th.il_weight], np.int64)
        frames = np.empty(n_try, np.int64)
        done = alloc_pages_task(m.st, pol_id, th.cpu, il, frames)
        th.il_prev, th.il_weight = int(il[0]), int(il[1])
        m.page_cache.extend(frames[:done].tolist())
        nodes = m.pt.frames["node"][frames[:done]].astype(np.int64)
        if done < n_pages:
            raise_errno(errno.ENOMEM, f"page cache: no memory after {done} of {n_pages} pages")
        return nodes

    def drop_caches(self):
        """echo 1 > /proc/sys/vm/drop_caches: every page-cache page is freed."""
        m = self.m
        frames = np.array(m.page_cache, np.int64)
        m.page_cache.clear()
        release_frames(m.st, frames)

