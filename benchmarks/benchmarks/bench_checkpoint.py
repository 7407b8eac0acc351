"""Checkpoints (docs/checkpoint.md): ``Simulator.save`` and ``Simulator.load`` of a machine
whose one process has every page of an ``n_pages`` mapping present (written once, so the
page tables, frames and free lists are full), and the checkpoint's size on disk.

16M pages (64 GiB simulated) take about 0.4 GB of arrays, written once and read back once
per measurement: sized for a 2-core, 24 GB machine (peak about 1.2 GB: the machine, and
the loaded copy). Checkpoints go to a temporary directory (fsync'd, as Simulator.save
always does), never to the working directory.
"""
import functools
import os
import shutil
import tempfile

import numpy as np

from .common import PAGE_SHIFT, new_process, sizes, warm_jit

#: Pages first-touched per sim.access call while populating (bounds the address array).
POPULATE_CHUNK = 1 << 22


@functools.lru_cache(maxsize=1)
def populated(n_pages):
    """One machine per benchmark process: a process whose ``n_pages`` pages are present."""
    sim, pid, base = new_process(n_pages)
    for lo in range(0, n_pages, POPULATE_CHUNK):
        pages = np.arange(lo, min(n_pages, lo + POPULATE_CHUNK), dtype=np.int64)
        sim.access(pid, base + (pages << PAGE_SHIFT), write=True)
    return sim


def _bytes(directory):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(directory)
               for f in fs)


class Checkpoint:
    params = [sizes([1 << 20, 1 << 24], [1 << 16])]
    param_names = ["pages"]
    timeout = 600
    number = 1
    repeat = 3

    def setup(self, n_pages):
        warm_jit("access")
        self.sim = populated(n_pages)
        self.tmp = tempfile.mkdtemp(prefix="fastnuma-asv-ckpt-")
        self.saved = os.path.join(self.tmp, "saved")
        self.sim.save(self.saved)
        self.out = os.path.join(self.tmp, "out")

    def teardown(self, n_pages):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_save(self, n_pages):
        """Simulator.save: encode, write arrays.npz + manifest (SHA-256 while writing),
        fsync, switch CURRENT."""
        self.sim.save(self.out)

    def time_load(self, n_pages):
        """Simulator.load: read and check every array, rebuild the simulator."""
        type(self.sim).load(self.saved)

    def track_size(self, n_pages):
        """Bytes of one checkpoint on disk."""
        return _bytes(self.saved)
    track_size.unit = "bytes"

    def track_bytes_per_page(self, n_pages):
        """Checkpoint bytes per present page (page tables, frames, free list, hash)."""
        return _bytes(self.saved) / n_pages
    track_bytes_per_page.unit = "bytes"
