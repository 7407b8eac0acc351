"""Kernels of the invariant checker (fastnuma/invariants.py): scans too long for numpy."""
import numpy as np

from ..dtypes import (CTL_NBLOCKS, FRAME_FREE, FRAME_SHM, PTE_NODE_SHIFT, PTE_PRESENT,
                      PTE_ZERO, PTRS_PER_PMD_SHIFT, ZERO_PAGE_NODE)
from ._jit import kernel


@kernel
def pte_node_mismatch(st):
    """The first PTE index whose cached node breaks the invariant of dtypes.PTE_NODE_SHIFT
    (a node other than its folio's, or a folio that is shared, freed or shmem), else -1.
    The event loop trusts the cache; fastnuma.invariants checks it."""
    for pi in range(st.ctl[CTL_NBLOCKS] << PTRS_PER_PMD_SHIFT):
        fl = st.ptes[pi]["flags"]
        cached = np.int64(fl >> PTE_NODE_SHIFT) & 0xFF
        if cached == 0:
            continue
        f = np.int64(st.ptes[pi]["frame"])
        if not fl & PTE_PRESENT:
            return pi
        if f < 0:
            if not fl & PTE_ZERO or cached != ZERO_PAGE_NODE + 1:
                return pi
        elif (st.frames[f]["node"] + 1 != cached or st.frames[f]["mapcount"] != 1
              or st.frames[f]["flags"] & (FRAME_SHM | FRAME_FREE)):
            return pi
    return np.int64(-1)


