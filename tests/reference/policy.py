"""Memory policies of the reference model: validation and node choice.

One function per Linux function (mm/mempolicy.c), each citing linux-semantics.md.
Policies are immutable :class:`Policy` values; ``None`` is "no policy here"
(MPOL_DEFAULT is never stored, §1.2).
"""
import errno
import operator
from dataclasses import dataclass, replace

from fastnuma.constants import (MAX_NUMNODES, MPOL_BIND, MPOL_DEFAULT, MPOL_F_MOF,
                                MPOL_F_MORON, MPOL_F_NUMA_BALANCING, MPOL_F_RELATIVE_NODES,
                                MPOL_F_STATIC_NODES, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_MAX,
                                MPOL_MODE_FLAGS, MPOL_PREFERRED, MPOL_PREFERRED_MANY,
                                MPOL_WEIGHTED_INTERLEAVE, PAGE_SIZE)
from fastnuma.errors import BAD_ADDRESS, raise_errno

U64 = (1 << 64) - 1
INTERLEAVE_MODES = (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE)
POLICY_MODE_NAMES = {            # mm/mempolicy.c policy_modes[]
    MPOL_DEFAULT: "default", MPOL_PREFERRED: "prefer", MPOL_BIND: "bind",
    MPOL_INTERLEAVE: "interleave", MPOL_WEIGHTED_INTERLEAVE: "weighted interleave",
    MPOL_LOCAL: "local", MPOL_PREFERRED_MANY: "prefer (many)",
}


def as_int(value, name):
    """An integer argument (int, numpy integer, bool); anything else is a TypeError."""
    if isinstance(value, (float, str, bytes)) or value is None:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None


@dataclass(frozen=True)
class Policy:
    """struct mempolicy (§1.2): mode, flags (user mode flags | MOF | MORON), the effective
    nodes, the user nodemask (only kept with STATIC/RELATIVE, as mpol_set_nodemask does),
    home node. Equality is mpol_equal (§2.3). ``system`` marks the system default
    (preferred_node_policy[node], printed as "default")."""

    mode: int
    flags: int = 0
    nodes: frozenset = frozenset()
    user_nodes: frozenset = None
    home_node: int = -1
    system: bool = False


def system_default_policy(node):
    """§1.4 step 4 (numa_policy_init): PREFERRED {local node} with MOF|MORON."""
    return Policy(MPOL_PREFERRED, MPOL_F_MOF | MPOL_F_MORON, frozenset({node}), system=True)


def mpol_equal(a, b):
    """mpol_equal(): NULL equals NULL; otherwise mode, flags, home node, nodes and (with
    STATIC/RELATIVE) the user nodemask."""
    if a is None or b is None:
        return a is b
    return a == b


# ------------------------------------------------------------------ validation (§1.3, §2.1)
def sanitize_mpol_flags(mode):
    """§1.3 step 1: split the mode argument into mode and mode flags. EINVAL for mode >= 7
    (as unsigned), STATIC with RELATIVE, NUMA_BALANCING with a mode other than
    BIND/PREFERRED_MANY; NUMA_BALANCING adds MOF|MORON."""
    mode = as_int(mode, "mode")
    if not -(1 << 31) <= mode < (1 << 31):
        raise_errno(errno.EINVAL, f"mode {mode} does not fit an int")
    flags = mode & MPOL_MODE_FLAGS
    mode &= ~MPOL_MODE_FLAGS
    if mode & 0xFFFFFFFF >= MPOL_MAX:
        raise_errno(errno.EINVAL, f"mode {mode} is not a policy mode")
    if flags & MPOL_F_STATIC_NODES and flags & MPOL_F_RELATIVE_NODES:
        raise_errno(errno.EINVAL, "MPOL_F_STATIC_NODES with MPOL_F_RELATIVE_NODES")
    if flags & MPOL_F_NUMA_BALANCING:
        if mode in (MPOL_BIND, MPOL_PREFERRED_MANY):
            flags |= MPOL_F_MOF | MPOL_F_MORON
        else:
            raise_errno(errno.EINVAL, "MPOL_F_NUMA_BALANCING needs MPOL_BIND or "
                                      "MPOL_PREFERRED_MANY")
    return mode, flags


def get_nodes(nodemask, maxnode=None):
    """§2.1 step 2 (get_nodes) on a Python nodemask: None, an int bitmask or an iterable of
    node ids; returns the frozenset of node ids read.

    ``maxnode`` None reads every bit (any bit >= MAX_NUMNODES is EINVAL). A given maxnode
    reads only bits < maxnode-1, as the kernel (it decrements first): an empty mask is the
    NULL mask (always accepted), maxnode 0 with a non-empty mask wraps -> EINVAL,
    maxnode-1 > 8*PAGE_SIZE -> EINVAL, a set bit in [MAX_NUMNODES, maxnode-1) -> EINVAL.
    A negative node id -> EINVAL. Wrong types -> TypeError.
    """
    if maxnode is not None:
        maxnode = as_int(maxnode, "maxnode")
    if nodemask is BAD_ADDRESS:        # get_nodes: --maxnode; 0: not read; > a page: EINVAL
        n = MAX_NUMNODES + 1 if maxnode is None else maxnode
        n = (n - 1) & U64
        if n == 0:
            return frozenset()
        if n > 8 * PAGE_SIZE:
            raise_errno(errno.EINVAL, f"maxnode-1 = {n} > {8 * PAGE_SIZE}")
        raise_errno(errno.EFAULT, "get_bitmap: the nodemask cannot be read")
    huge = False                      # an id >= 2**16: beyond any readable maxnode
    if nodemask is None:
        bits = 0
    elif isinstance(nodemask, (bool, float, str, bytes)):
        raise TypeError(f"nodemask must be an int or an iterable of node ids, "
                        f"not {type(nodemask).__name__}")
    else:
        try:
            bits = operator.index(nodemask)
        except TypeError:
            try:
                ids = list(nodemask)
            except TypeError:
                raise TypeError(f"nodemask must be an int or an iterable of node ids, "
                                f"not {type(nodemask).__name__}") from None
            bits = 0
            for n in ids:
                n = as_int(n, "node id")
                if n < 0:
                    raise_errno(errno.EINVAL, f"negative node id {n}")
                if n >= (1 << 16):
                    huge = True
                else:
                    bits |= 1 << n
    if maxnode is None:
        if huge or bits < 0 or bits >> MAX_NUMNODES:
            raise_errno(errno.EINVAL, "nodemask has a bit at or above MAX_NUMNODES")
        return _mask_to_set(bits)
    maxnode &= U64
    if bits == 0 and not huge:           # NULL mask: maxnode is not looked at
        return frozenset()
    maxnode = (maxnode - 1) & U64
    if maxnode == 0:
        return frozenset()
    if maxnode > 8 * PAGE_SIZE:
        raise_errno(errno.EINVAL, f"maxnode-1 = {maxnode} > {8 * PAGE_SIZE}")
    bits &= (1 << maxnode) - 1
    if bits >> MAX_NUMNODES:
        raise_errno(errno.EINVAL, "nodemask has a bit at or above MAX_NUMNODES")
    return _mask_to_set(bits)


def _mask_to_set(bits):
    out, n = [], 0
    while bits:
        if bits & 1:
            out.append(n)
        bits >>= 1
        n += 1
    return frozenset(out)


def mpol_new(mode, flags, nodes):
    """§1.3 step 2 (mpol_new): DEFAULT with nodes -> EINVAL, else None (no policy);
    PREFERRED with no nodes -> LOCAL (EINVAL with STATIC/RELATIVE); LOCAL with nodes or
    STATIC/RELATIVE -> EINVAL; any other mode with no nodes -> EINVAL. Returns a Policy
    whose nodes are not set yet (mpol_set_nodemask does that)."""
    if mode == MPOL_DEFAULT:
        if nodes:
            raise_errno(errno.EINVAL, "MPOL_DEFAULT with a non-empty nodemask")
        return None
    if mode == MPOL_PREFERRED:
        if not nodes:
            if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
                raise_errno(errno.EINVAL, "MPOL_PREFERRED with an empty mask and "
                                          "STATIC/RELATIVE")
            mode = MPOL_LOCAL
    elif mode == MPOL_LOCAL:
        if nodes or flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            raise_errno(errno.EINVAL, "MPOL_LOCAL with a nodemask or STATIC/RELATIVE")
    elif not nodes:
        raise_errno(errno.EINVAL, f"mode {mode} with an empty nodemask")
    return Policy(mode, flags)


def mpol_relative_nodemask(user, allowed):
    """nodes_fold + nodes_onto: bit i of the user mask (folded modulo |allowed|) selects
    the i-th allowed node."""
    rel = sorted(allowed)
    if not rel:
        return frozenset()
    return frozenset(rel[i % len(rel)] for i in user)


def mpol_set_nodemask(pol, user, memory_nodes):
    """§1.3 steps 3-5: allowed = nodes with memory (no cpusets); RELATIVE folds the user
    mask onto allowed, otherwise intersect; empty -> EINVAL; PREFERRED keeps the lowest
    node (mpol_new_preferred). The user mask is stored with STATIC/RELATIVE."""
    if pol is None or pol.mode == MPOL_LOCAL:
        return pol
    allowed = frozenset(memory_nodes)
    if pol.flags & MPOL_F_RELATIVE_NODES:
        nodes = mpol_relative_nodemask(user, allowed)
    else:
        nodes = frozenset(user) & allowed
    if not nodes:
        raise_errno(errno.EINVAL, "no node of the nodemask has memory")
    if pol.mode == MPOL_PREFERRED:
        nodes = frozenset({min(nodes)})
    keep_user = pol.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES)
    return replace(pol, nodes=nodes, user_nodes=frozenset(user) if keep_user else None)


# ------------------------------------------------------------------ node choice (§1.5)
def next_node_in(node, nodes):
    """next_node_in(): the next node of ``nodes`` after ``node``, wrapping; MAX_NUMNODES
    when empty."""
    if not nodes:
        return MAX_NUMNODES
    after = [n for n in nodes if n > node]
    return min(after) if after else min(nodes)


def get_il_weight(node, weights):
    """get_il_weight(): the weighted_interleave/nodeN value, 0 or unset = 1."""
    w = (weights or {}).get(node, 0)
    return w if w else 1


def interleave_nid(pol, ilx, local_node):
    """§1.5 INTERLEAVE with an index: the (ilx mod |S|)-th node of S ascending (64-bit
    ilx); the local node if S is empty."""
    nodes = sorted(pol.nodes)
    if not nodes:
        return local_node
    return nodes[(ilx & U64) % len(nodes)]


def weighted_interleave_nid(pol, ilx, weights, local_node):
    """§1.5 WEIGHTED_INTERLEAVE with an index: t = ilx mod sum(w); walk S ascending,
    subtracting weights until t < w(n)."""
    nodes = sorted(pol.nodes)
    if not nodes:
        return local_node
    total = sum(get_il_weight(n, weights) for n in nodes)
    target = (ilx & U64) % total
    i = 0
    while target:
        w = get_il_weight(nodes[i], weights)
        if target < w:
            break
        target -= w
        i = (i + 1) % len(nodes)
    return nodes[i]


def interleave_nodes(pol, thread):
    """§1.5 INTERLEAVE without an index (interleave_nodes): the next node after il_prev,
    which becomes il_prev."""
    nid = next_node_in(thread.il_prev, pol.nodes)
    if nid < MAX_NUMNODES:
        thread.il_prev = nid
    return nid


def weighted_interleave_nodes(pol, thread, weights):
    """§1.5 WEIGHTED_INTERLEAVE without an index (weighted_interleave_nodes)."""
    node = thread.il_prev
    if not thread.il_weight or node not in pol.nodes:
        node = next_node_in(node, pol.nodes)
        if node == MAX_NUMNODES:
            return node
        thread.il_prev = node
        thread.il_weight = get_il_weight(node, weights)
    thread.il_weight -= 1
    return node


# ------------------------------------------------------------------ text (§ numa_maps)
def nodelist(nodes):
    """The kernel's "%*pbl" bitmap list: "0-2,5"."""
    out, run = [], []
    for n in sorted(nodes):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}")
        run = [n]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}")
    return ",".join(out)


def mpol_to_str(pol):
    """mm/mempolicy.c mpol_to_str(): "<mode>[=<static|relative>[|balancing]][:<nodes>]";
    no policy and the system default print "default"; LOCAL prints no nodes."""
    if pol is None or pol.system:
        return "default"
    text = POLICY_MODE_NAMES[pol.mode]
    flags = pol.flags & MPOL_MODE_FLAGS
    if flags:
        text += "="
        if flags & MPOL_F_STATIC_NODES:
            text += "static"
        elif flags & MPOL_F_RELATIVE_NODES:
            text += "relative"
        if flags & MPOL_F_NUMA_BALANCING:
            if flags & (flags - 1):           # not a power of two
                text += "|"
            text += "balancing"
    nodes = pol.nodes if pol.mode != MPOL_LOCAL else ()
    if nodes:
        text += ":" + nodelist(nodes)
    return text


def node_remap(oldbit, old, new):
    """lib/bitmap.c bitmap_bitremap (node_remap): the k-th node of ``new`` (ascending),
    k = rank of oldbit in ``old`` mod |new|; oldbit itself if it is not in old or new is
    empty (§3.4)."""
    old_sorted, new_sorted = sorted(old), sorted(new)
    if oldbit not in old or not new_sorted:
        return oldbit
    return new_sorted[old_sorted.index(oldbit) % len(new_sorted)]
