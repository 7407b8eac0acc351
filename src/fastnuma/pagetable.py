"""PageTable: owns the PTE blocks, the PMD hash and the frame table; grows them geometrically.

Python only: kernels see the arrays as members of the simulator's ``SimState`` and say when
they need more room; arrays are never reallocated per access or per batch, only doubled.
"""
import numpy as np

from .dtypes import (ASID_SHIFT, CTL_HCOUNT, CTL_NBLOCKS, CTL_NFRAMES, FRAME_DTYPE, N_CTL,
                     PMD_KEY_MASK, PTE_DTYPE, PTRS_PER_PMD, PTRS_PER_PMD_SHIFT, ROOM_BLOCKS,
                     ROOM_FRAMES)


class PageTable:
    """Every address space's page tables (processes and shared objects) and all frames."""

    def __init__(self, blocks=64, frames=4096, max_frames=1 << 62):
        # Every live frame holds at least one allocated page and new frames come from the
        # free list first, so max_frames = the machine's pages (+ slack) is always enough:
        # frame growth stops there, and a table of that size never runs out.
        self.max_frames = max_frames
        frames = min(frames, max_frames)
        self.arrays = dict(
            ptes=np.zeros(blocks * PTRS_PER_PMD, PTE_DTYPE),
            blk_key=np.full(blocks, -1, np.int64),
            blk_used=np.zeros(blocks, np.int32),
            blk_table=np.zeros(blocks, np.int8),     # 1: the PMD points to a PTE table
            blk_numa=np.zeros(blocks, np.int8),      # 1: the PMD is marked NUMA (seed)
            pmd_hash=np.full((4 * blocks, 2), -1, np.int64),   # (key, block) per slot
            frames=np.zeros(frames, FRAME_DTYPE),
            frame_free=np.zeros(frames, np.int32),
            ctl=np.zeros(N_CTL, np.int64),
        )
        self.st = None           # the SimState holding the arrays (set by the Simulator)

    def __getattr__(self, name):
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def n_blocks(self):
        return int(self.ctl[CTL_NBLOCKS])

    def reserve(self, blocks=ROOM_BLOCKS, frames=ROOM_FRAMES):
        """Make room for ``blocks`` more PTE blocks and ``frames`` more frames."""
        m = self
        nb, nf = int(m.ctl[CTL_NBLOCKS]), int(m.ctl[CTL_NFRAMES])
        changes = {}
        if nb + blocks > m.blk_key.size:
            cap = _grown(m.blk_key.size, nb + blocks)
            changes["ptes"] = _resized(m.ptes, cap * PTRS_PER_PMD, 0)
            changes["blk_key"] = _resized(m.blk_key, cap, -1)
            changes["blk_used"] = _resized(m.blk_used, cap, 0)
            changes["blk_table"] = _resized(m.blk_table, cap, 0)
            changes["blk_numa"] = _resized(m.blk_numa, cap, 0)
        if 2 * (int(m.ctl[CTL_HCOUNT]) + blocks) > len(m.pmd_hash):
            cap = _grown(len(m.pmd_hash), 2 * (int(m.ctl[CTL_HCOUNT]) + blocks))
            keys = changes.get("blk_key", m.blk_key)
            changes["pmd_hash"] = np.full((cap, 2), -1, np.int64)
            from .kernels.state import rehash     # the hash function is the kernels' own
            rehash(keys, nb, changes["pmd_hash"])
        need = min(nf + frames, self.max_frames)
        if need > m.frames.size:
            cap = min(_grown(m.frames.size, need), self.max_frames)
            changes["frames"] = _resized(m.frames, cap, 0)
            changes["frame_free"] = _resized(m.frame_free, cap, 0)
        if changes:
            self.arrays.update(changes)
            self.st.replace(**changes)

    def grow(self):
        """Called when a kernel returned NEED_GROW: room for the next event."""
        self.reserve(max(ROOM_BLOCKS, self.n_blocks + 1),
                     max(ROOM_FRAMES, int(self.ctl[CTL_NFRAMES]) + 1))

    def blocks_of(self, asid, lo_vpn=0, hi_vpn=None):
        """Blocks of address space ``asid`` meeting [lo_vpn, hi_vpn), sorted by address."""
        keys = self.blk_key[:self.n_blocks]
        lo_key = (asid << ASID_SHIFT) | (lo_vpn >> PTRS_PER_PMD_SHIFT)
        if hi_vpn is None:
            hi_key = (asid + 1) << ASID_SHIFT
        else:
            hi_key = (asid << ASID_SHIFT) | ((hi_vpn + PTRS_PER_PMD - 1) >> PTRS_PER_PMD_SHIFT)
        idx = np.flatnonzero((keys >= lo_key) & (keys < hi_key))
        return idx[np.argsort(keys[idx], kind="stable")].astype(np.int64)

    def pmds_of(self, blocks):
        """The PMD numbers of ``blocks`` (sorted when the blocks are)."""
        return self.blk_key[blocks] & PMD_KEY_MASK


def _grown(cap, need):
    while cap < need:
        cap *= 2
    return cap


def _resized(arr, cap, fill):
    """A copy of arr in a larger array; the rest is ``fill`` (zeros come from calloc)."""
    out = np.zeros(cap, arr.dtype) if fill == 0 else np.full(cap, fill, arr.dtype)
    out.view(np.uint8)[:arr.nbytes] = arr.view(np.uint8)   # raw copy: 4x faster for records
    return out
