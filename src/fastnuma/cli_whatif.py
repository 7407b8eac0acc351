"""The command line's what-if options (numactl's flags, CPU placement, cost model, run
configurations) for ``fastnuma replay`` and ``fastnuma compare``."""
import os
import sys

from .numactl import CPU_MAP_MODES

_POLICY_FLAGS = (("--interleave", "NODES", "interleave pages over NODES"),
                 ("--membind", "NODES", "allocate only from NODES"),
                 ("--preferred", "NODE", "prefer NODE, fall back to others"),
                 ("--preferred-many", "NODES", "prefer NODES, fall back to others"),
                 ("--weighted-interleave", "NODES", "weighted interleave over NODES "
                  "(weights: --il-weights)"))


def add_what_if_options(p, many_configs=False):
    """The options shared by replay and compare."""
    if many_configs:
        p.add_argument("-c", "--config", action="append", default=[],
                       help="a run configuration (TOML, docs/run-config.md); repeat for "
                       "several rows")
    else:
        p.add_argument("-c", "--config", help="a run configuration (TOML, "
                       "docs/run-config.md); the options below override it")
    g = p.add_argument_group("memory policy (numactl's options; node lists as numactl "
                             "writes them: all, 0-3, 0,2, !1, +0-1)")
    x = g.add_mutually_exclusive_group()
    for flag, meta, text in _POLICY_FLAGS:
        x.add_argument(flag, metavar=meta, help=text)
    x.add_argument("--localalloc", action="store_true", help="allocate on the local node")
    g.add_argument("--il-weights", metavar="N=W,...", help="weighted-interleave weights "
                   "(/sys/kernel/mm/mempolicy/weighted_interleave/nodeN), e.g. 0=3,1=1")
    c = p.add_argument_group("CPU placement of the trace's threads")
    c.add_argument("--cpunodebind", metavar="NODES", help="run only on the CPUs of NODES")
    c.add_argument("--physcpubind", metavar="CPUS", help="run only on CPUS")
    c.add_argument("--cpu-map", metavar="MODE|FILE", help=f"{'|'.join(CPU_MAP_MODES[:-1])} "
                   "or a file of 'TRACE_CPU TARGET_CPU' lines (default keep)")
    m = p.add_argument_group("cost model (docs/cost-model.md)")
    m.add_argument("--mlc", metavar="FILE", help="Intel MLC output: its latency matrix "
                   "(and bandwidth matrix, if present) price the accesses")
    m.add_argument("--mlc-bandwidth", metavar="FILE", help="Intel MLC --bandwidth_matrix "
                   "output")
    m.add_argument("--llc", choices=("auto", "on", "off"), help="last-level-cache filter "
                   "(default auto: on for instruction-level traces such as lackey's)")


def config_from_args(args, base=None):
    """A RunConfig: ``base`` (or -c FILE, or the default) with the command line's options
    applied on top."""
    from .mlc import read_mlc
    from .runconfig import RunConfig
    if base is None:
        cfg = args.config if isinstance(getattr(args, "config", None), str) else None
        base = RunConfig.from_toml(cfg) if cfg else RunConfig()
    d = base.to_dict()
    d["name"] = base.name
    topo = getattr(args, "topology", None)
    if topo is not None:
        from .runconfig import PRESETS
        kind = "preset" if topo in PRESETS else "sysfs" if os.path.isdir(topo) else \
            "numactl"
        if kind == "numactl" and not os.path.exists(topo):
            raise ValueError(f"--topology {topo!r}: not a preset ({', '.join(PRESETS)}) "
                             f"nor a file")
        d["machine"] = {kind: topo}
    for name in ("numa_balancing", "profile", "thp"):
        if getattr(args, name, None) is not None:
            d["kernel"][name] = getattr(args, name)
    if args.il_weights:
        d["kernel"]["interleave_weights"] = _weights(args.il_weights)
    for flag, _, _ in _POLICY_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            d["policy"]["task"] = f"{flag[2:]}:{value}"
    if args.localalloc:
        d["policy"]["task"] = "localalloc"
    pl = d["placement"]
    if args.cpu_map is not None:
        if args.cpu_map in CPU_MAP_MODES[:-1]:
            pl["cpu_map"] = args.cpu_map
            pl.pop("file", None)
        else:
            pl["cpu_map"], pl["file"] = "file", args.cpu_map
    for name in ("cpunodebind", "physcpubind"):
        if getattr(args, name) is not None:
            pl[name] = getattr(args, name)
    cost = d["cost"]
    if args.mlc is not None:
        mats = read_mlc(args.mlc)
        if "latency" in mats:
            cost["mlc_latency"] = args.mlc
        if "bandwidth" in mats:
            cost["mlc_bandwidth"] = args.mlc
    if args.mlc_bandwidth is not None:
        cost["mlc_bandwidth"] = args.mlc_bandwidth
    if args.llc is not None:
        cost["llc"] = args.llc
    rep = d["replay"]
    for name in ("epoch", "strict"):
        v = getattr(args, name, None)
        if v is not None and v is not False:
            rep[name] = v
    return RunConfig.from_dict(d)


def _weights(text):
    out = {}
    for part in text.split(","):
        node, sep, w = part.partition("=")
        if not sep or not node.strip().isdigit() or not w.strip().isdigit():
            raise ValueError(f"--il-weights {text!r}: expected N=W,... (e.g. 0=3,1=1)")
        out[int(node)] = int(w)
    return out


def add_compare_parser(sub):
    cmp = sub.add_parser("compare", help="replay trace(s) under several configurations, "
                         "one row each", description="Replay each TRACE once per "
                         "configuration (-c FILE ..., or --vary KEY=V1,V2,... on a base) "
                         "and print one row per run; -o writes the table (.parquet/.csv).")
    cmp.add_argument("traces", nargs="+", help="trace file(s), directory or glob")
    cmp.add_argument("--vary", metavar="KEY=V1,V2,...", help="one configuration per value "
                     "of KEY (policy, SECTION.KEY: kernel.numa_balancing, machine.preset, "
                     "placement.cpu_map, cost.local_ns ...), on top of --base")
    cmp.add_argument("--base", help="the configuration --vary starts from (TOML)")
    cmp.add_argument("--topology", help="machine of every configuration (as replay's)")
    cmp.add_argument("--numa-balancing", type=int, choices=(0, 1))
    cmp.add_argument("--epoch", help="time-series step of every run (as replay's)")
    cmp.add_argument("-o", "--output", help="write the table (.parquet or .csv)")
    cmp.add_argument("--html", metavar="FILE", help="also write an HTML page: the runs "
                     "side by side, ranked by estimated time (figures need fastnuma[plot])")
    add_what_if_options(cmp, many_configs=True)


def run_compare(args):
    from .whatif import compare, format_table, split_values, vary, write_table
    from .runconfig import RunConfig
    args.profile = args.thp = args.strict = None
    if args.output is not None and os.path.splitext(args.output)[1].lower() not in (
            ".parquet", ".csv"):
        raise ValueError(f"-o {args.output!r}: expected a .parquet or .csv file")
    if args.vary:
        key, sep, values = args.vary.partition("=")
        if not sep or not values.strip():
            raise ValueError(f"--vary {args.vary!r}: expected KEY=V1,V2,...")
        base = RunConfig.from_toml(args.base) if args.base else RunConfig()
        base = config_from_args(args, base)
        configs = vary(base, key.strip(), split_values(key.strip(), values))
    else:
        if not args.config:
            raise ValueError("compare needs -c FILE (two or more) or --vary KEY=V1,V2")
        configs = [config_from_args(args, RunConfig.from_toml(c)) for c in args.config]
    if args.html is not None and os.path.isdir(args.html):
        raise ValueError(f"--html {args.html!r} is a directory")
    reports = [] if args.html is not None else None
    table = compare(args.traces, configs, reports=reports)
    print(format_table(table))
    if args.output:
        write_table(table, args.output)
        print(f"table written to {args.output}", file=sys.stderr)
    if args.html is not None:
        from .html import write_html
        from .html_results import compare_page
        write_html(args.html, compare_page(table, reports))
        print(f"HTML page written to {args.html}", file=sys.stderr)

