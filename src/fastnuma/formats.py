"""A report's counters in the shapes the shell knows (``fastnuma replay --format``).

vmstat: ``name value`` lines as /proc/vmstat prints them, then a blank line and the
per-node allocation counters laid out like ``numastat -n`` (MiB: pages x 4 KiB / 1 MiB,
two decimals, one column per node and a Total). json: summary.json's content.
"""
import json

from .view import view_of

# numastat -n's row names for the per-node counters (numactl's numastat.c)
NUMASTAT_ROWS = (("numa_hit", "Numa_Hit"), ("numa_miss", "Numa_Miss"),
                 ("numa_foreign", "Numa_Foreign"), ("interleave_hit", "Interleave_Hit"),
                 ("local_node", "Local_Node"), ("other_node", "Other_Node"))
PAGE_MIB = 4096 / (1 << 20)


def vmstat_lines(source):
    """/proc/vmstat-shaped ``name value`` lines of the report's counters."""
    t = view_of(source).tables["counters"].to_pydict()
    return [f"{n} {v}" for n, v in zip(t["name"], t["value"])]


def numastat_text(source):
    """The per-node counters laid out like ``numastat -n`` (MiB)."""
    nodes = view_of(source).tables["nodes"].to_pydict()
    n = len(nodes["node"])
    head = "".join(f"{f'Node {k}':>16}" for k in range(n)) + f"{'Total':>16}"
    lines = ["", "Per-node numastat info (in MBs):", f"{'':<16}" + head,
             f"{'':<16}" + (" " + "-" * 15) * (n + 1)]
    for key, label in NUMASTAT_ROWS:
        vals = [nodes[key][k] * PAGE_MIB for k in range(n)] if key in nodes else [0.0] * n
        lines.append(f"{label:<16}" + "".join(f"{v:>16.2f}" for v in vals)
                     + f"{sum(vals):>16.2f}")
    return "\n".join(lines)


def vmstat_text(source):
    return "\n".join(vmstat_lines(source)) + "\n" + numastat_text(source)


def json_text(source):
    return json.dumps(view_of(source).summary, indent=2, default=int)


def aligned(pairs, indent=""):
    """``label  value`` lines with the values in one column."""
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k:<{width}}  {v}" for k, v in pairs]
