"""Each node's fallback order for allocations, built as Linux builds its zonelists at boot
(mm/page_alloc.c ``__build_all_zonelists`` -> ``build_zonelists`` ->
``find_next_best_node``; docs/linux-semantics.md §1.6)."""
from .constants import MAX_NUMNODES

PENALTY_FOR_NODE_WITH_CPUS = 1    # include/linux/topology.h, generic value (x86 keeps it)


def find_next_best_node(node, used, distance, has_memory, has_cpus, node_load):
    """Next node of ``node``'s fallback list, or -1: mm/page_alloc.c find_next_best_node()."""
    # Since v6.8 ("mm: page_alloc: skip memoryless nodes entirely") the local node comes
    # first only if it has memory (node_state(node, N_MEMORY)).
    if not used[node] and has_memory[node]:
        used[node] = True
        return node
    best, min_val = -1, None
    for n in range(len(distance)):               # for_each_node_state(n, N_MEMORY)
        if not has_memory[n] or used[n]:
            continue
        val = distance[node][n]                  # node_distance(node, n): row = source node
        val += int(n < node)                     # "prefer the next node"
        if has_cpus[n]:                          # nodes WITH CPUs are penalised, so a CPU-less
            val += PENALTY_FOR_NODE_WITH_CPUS    # (CXL) node wins a distance tie
        val = val * MAX_NUMNODES + node_load[n]
        if min_val is None or val < min_val:     # strict <: ties go to the lowest id
            best, min_val = n, val
    if best >= 0:
        used[best] = True
    return best


def build_all_zonelists(distance, has_memory, has_cpus):
    """Fallback list of every node: mm/page_alloc.c __build_all_zonelists().

    One pass over all nodes in id order; ``node_load`` is zeroed once per pass and shared by
    every build_zonelists() call, so equal-distance groups round-robin between source nodes.
    """
    n = len(distance)
    node_load = [0] * n
    lists = []
    for local in range(n):
        used, order, prev = [False] * n, [], local
        while (node := find_next_best_node(local, used, distance, has_memory, has_cpus,
                                            node_load)) >= 0:
            # build_zonelists(): penalise the first node of each new distance group
            if distance[local][node] != distance[local][prev]:
                node_load[node] += 1
            order.append(node)
            prev = node
        lists.append(tuple(order))
    return tuple(lists)
