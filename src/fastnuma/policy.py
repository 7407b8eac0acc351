"""Memory policies: nodemask parsing (get_nodes), sanitize_mpol_flags, mpol_new,
mpol_set_nodemask, and the policy table the kernels read.

Validation raises OSError with Linux's errno through ``raise_errno``; nothing here
changes simulator state except :meth:`PolicyTable.intern`.
"""
import errno
import operator
import re
from dataclasses import dataclass

import numpy as np

from .constants import (MAX_MASK_NODES, MAX_NUMNODES, MODE_NAMES, MPOL_BIND, MPOL_DEFAULT,
                        MPOL_F_MOF, MPOL_F_MORON, MPOL_F_NUMA_BALANCING,
                        MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES, MPOL_LOCAL, MPOL_MAX,
                        MPOL_MODE_FLAGS, MPOL_PREFERRED, MPOL_PREFERRED_MANY)
from .dtypes import NO_POLICY, POLICY_DTYPE
from .errors import BAD_ADDRESS, raise_errno

_U64 = (1 << 64) - 1


def as_int(value, name):
    """``operator.index`` with a TypeError that names the argument."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}: {value!r}") \
            from None


def get_nodes(nodemask, maxnode=None):
    """get_nodes(): the user's node mask as an int bitmask.

    ``nodemask``: None (NULL), an int bitmask, or an iterable of node ids. ``maxnode`` None
    reads every bit (a bit at or above MAX_NUMNODES is EINVAL). A given maxnode reads only
    the bits below maxnode-1, as the kernel does (it decrements first): an empty mask is the
    NULL mask, maxnode 0 with a non-empty mask wraps around (EINVAL), maxnode-1 > 32768 is
    EINVAL, and a set bit in [MAX_NUMNODES, maxnode-1) is EINVAL. A negative id is EINVAL,
    a mask of another type a TypeError.
    """
    if maxnode is not None:
        maxnode = as_int(maxnode, "maxnode")
    if nodemask is BAD_ADDRESS:                      # the kernel reads it unless maxnode-1
        bits = MAX_NUMNODES + 1 if maxnode is None else (maxnode - 1) & _U64   # is 0
        if bits == 0:
            return 0
        if bits > MAX_MASK_NODES:
            raise_errno(errno.EINVAL, f"maxnode {maxnode}: maxnode-1 exceeds {MAX_MASK_NODES}")
        raise_errno(errno.EFAULT, "nodemask: the user pointer cannot be read (BAD_ADDRESS)")
    beyond = False                    # an id >= 2**16: past any maxnode the kernel reads
    if nodemask is None:
        mask = 0
    elif isinstance(nodemask, (bool, float, str, bytes)):
        raise TypeError(f"nodemask must be an int bitmask or an iterable of node ids, "
                        f"not {type(nodemask).__name__}: {nodemask!r}")
    else:
        try:
            mask = operator.index(nodemask)
        except TypeError:
            try:
                ids = list(nodemask)
            except TypeError:
                raise TypeError(f"nodemask must be an int bitmask or an iterable of node ids, "
                                f"not {type(nodemask).__name__}") from None
            mask = 0
            for n in ids:
                n = as_int(n, "node id")
                if n < 0:
                    raise_errno(errno.EINVAL, f"node {n} in nodemask is negative")
                if n >= 1 << 16:
                    beyond = True
                else:
                    mask |= 1 << n
        if mask < 0:
            raise_errno(errno.EINVAL, f"nodemask {mask} is negative")
    if maxnode is None:
        if beyond or mask >> MAX_NUMNODES:
            raise_errno(errno.EINVAL, f"nodemask has a node at or above MAX_NUMNODES "
                                      f"({MAX_NUMNODES})")
        return mask
    if not mask and not beyond:                      # NULL mask: maxnode is not read
        return 0
    bits = (maxnode - 1) & _U64
    if bits == 0:
        return 0
    if bits > MAX_MASK_NODES:
        raise_errno(errno.EINVAL, f"maxnode {maxnode}: maxnode-1 exceeds {MAX_MASK_NODES}")
    mask &= (1 << bits) - 1
    if mask >> MAX_NUMNODES:
        raise_errno(errno.EINVAL, f"nodemask has a node at or above MAX_NUMNODES "
                                  f"({MAX_NUMNODES}) within maxnode {maxnode}")
    return mask


def sanitize_mpol_flags(mode):
    """Split ``mode`` into (mode, flags); EINVAL per sanitize_mpol_flags (section 1.3.1)."""
    mode = as_int(mode, "mode")
    flags = mode & MPOL_MODE_FLAGS
    mode &= ~MPOL_MODE_FLAGS
    if not 0 <= mode < MPOL_MAX:
        raise_errno(errno.EINVAL, f"mode {mode} is not a memory policy mode (0..{MPOL_MAX - 1})")
    if flags & MPOL_F_STATIC_NODES and flags & MPOL_F_RELATIVE_NODES:
        raise_errno(errno.EINVAL, "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES together")
    if flags & MPOL_F_NUMA_BALANCING:
        if mode not in (MPOL_BIND, MPOL_PREFERRED_MANY):
            raise_errno(errno.EINVAL, f"MPOL_F_NUMA_BALANCING needs MPOL_BIND or "
                                      f"MPOL_PREFERRED_MANY, not mode {mode}")
        flags |= MPOL_F_MOF | MPOL_F_MORON
    return mode, flags


@dataclass(frozen=True, slots=True)
class Policy:
    """A stored memory policy (struct mempolicy). MPOL_DEFAULT is never stored (None).

    ``nodes``: effective node set (bitmask); ``user_nodes``: the mask as given, kept only
    with STATIC/RELATIVE (else 0, so that == is mpol_equal); ``flags``: user mode flags
    plus MPOL_F_MOF / MPOL_F_MORON."""
    mode: int
    flags: int
    nodes: int
    user_nodes: int = 0
    home_node: int = -1

    def user_mode(self):
        """The mode as get_mempolicy reports it: mode | user mode flags."""
        return self.mode | (self.flags & MPOL_MODE_FLAGS)

    def user_mask(self):
        """The mask as get_mempolicy reports it."""
        if self.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            return self.user_nodes
        return 0 if self.mode == MPOL_LOCAL else self.nodes

    def to_str(self):
        """mpol_to_str: "bind:0-1", "interleave=static:0,2", "local", ..."""
        text = MODE_NAMES[self.mode]
        if self.flags & MPOL_MODE_FLAGS:
            text += "="
            sep = ""
            if self.flags & MPOL_F_STATIC_NODES:
                text, sep = text + "static", "|"
            elif self.flags & MPOL_F_RELATIVE_NODES:
                text, sep = text + "relative", "|"
            if self.flags & MPOL_F_NUMA_BALANCING:
                text += sep + "balancing"
        if self.nodes:                       # pol->nodes, the effective set
            text += ":" + nodelist_str(self.nodes)
        return text


def mask_nodes(mask):
    """The node ids of a bitmask, ascending."""
    out, n = [], 0
    while mask:
        if mask & 1:
            out.append(n)
        mask >>= 1
        n += 1
    return out


def nodelist_str(mask):
    """Kernel bitmap list format (%*pbl): "0-2,5"."""
    return id_list_str(mask_nodes(mask))


def id_list_str(ids):
    """Ascending ids in the kernel's list format (%*pbl), as numactl prints them too."""
    ids, parts, i = list(ids), [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


def id_range(part):
    """One element of the kernel's list format (bitmap_parselist: "N" or "N-M", blanks
    around), as (first, last), or None when it is not one (or last < first)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
    if not m or (m[2] is not None and int(m[2]) < int(m[1])):
        return None
    return int(m[1]), int(m[2] or m[1])


def relative_nodemask(user, allowed):
    """mpol_relative_nodemask: fold user modulo |allowed|, map bit i to the i-th allowed node."""
    allowed_ids = mask_nodes(allowed)
    if not allowed_ids:
        return 0
    out = 0
    for n in mask_nodes(user):
        out |= 1 << allowed_ids[n % len(allowed_ids)]
    return out


def mpol_new(mode, flags, user_mask, allowed):
    """mpol_new + mpol_set_nodemask: the Policy to store, or None for MPOL_DEFAULT.

    ``allowed``: the nodes with memory (no cpusets in the simulator). EINVAL as 1.3.2-4."""
    if mode == MPOL_DEFAULT:
        if user_mask:
            raise_errno(errno.EINVAL, "MPOL_DEFAULT with a non-empty node mask")
        return None
    if mode == MPOL_PREFERRED and not user_mask:
        if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            raise_errno(errno.EINVAL, "MPOL_PREFERRED with an empty mask and "
                                      "MPOL_F_STATIC_NODES/RELATIVE_NODES")
        mode = MPOL_LOCAL
    elif mode == MPOL_LOCAL:
        if user_mask or flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            raise_errno(errno.EINVAL, "MPOL_LOCAL takes no node mask and no "
                                      "STATIC/RELATIVE flag")
    elif not user_mask:
        raise_errno(errno.EINVAL, f"mode {MODE_NAMES[mode]} needs a non-empty node mask")
    if mode == MPOL_LOCAL:
        return Policy(MPOL_LOCAL, flags, 0)
    if flags & MPOL_F_RELATIVE_NODES:
        nodes = relative_nodemask(user_mask, allowed)
    else:
        nodes = user_mask & allowed
    if not nodes:
        raise_errno(errno.EINVAL, f"node mask {nodelist_str(user_mask)} has no node with "
                                  f"memory (nodes with memory: {nodelist_str(allowed)})")
    if mode == MPOL_PREFERRED:
        nodes &= -nodes                      # mpol_new_preferred: the first node only
    keep_user = flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES)
    return Policy(mode, flags, nodes, user_mask if keep_user else 0)


class PolicyTable:
    """Interned policies: row ids for the kernels (``array``), Policy objects for Python."""

    def __init__(self):
        self._rows = []
        self._ids = {}
        self.array = np.zeros(0, POLICY_DTYPE)

    def intern(self, pol):
        """Row id of ``pol`` (NO_POLICY for None), appended on first use."""
        if pol is None:
            return NO_POLICY
        pid = self._ids.get(pol)
        if pid is None:
            pid = len(self._rows)
            self._rows.append(pol)
            self._ids[pol] = pid
            if pid >= self.array.size:
                grown = np.zeros(max(16, 2 * self.array.size), POLICY_DTYPE)
                grown[:self.array.size] = self.array
                self.array = grown
            self.array[pid] = (pol.mode, pol.flags, np.uint64(pol.nodes),
                               np.uint64(pol.user_nodes & (2**64 - 1)), pol.home_node, 0)
        return pid

    def __getitem__(self, pid):
        return None if pid == NO_POLICY else self._rows[pid]
