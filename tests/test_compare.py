"""Run configurations (TOML), `fastnuma compare` against separate `fastnuma replay` runs,
and the report's provenance, long-form epochs, numa_maps and file modes."""
import json
import os
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fastnuma as fn
from fastnuma.cli import main
from fastnuma.whatif import compare, split_values, vary
from fastnuma.runconfig import RunConfig, parse_size

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "traces" / "zipf_4node.parquet"          # 4 threads, 50,000 events
MLC = ROOT / "tests" / "data" / "mlc"

CONFIGS = {
    "a.toml": """version = 1
name = "2s default"
[machine]
preset = "two_socket"
pages_per_node = 65536
[replay]
epoch = "100ms"
""",
    "b.toml": """version = 1
name = "4s interleave, balancing"
[machine]
preset = "four_socket"
[kernel]
numa_balancing = 1
[policy]
task = "interleave:all"
[placement]
cpu_map = "pack"
[cost]
mlc_latency = "mlc/icx_4s_default_run.txt"
mlc_bandwidth = "mlc/icx_4s_default_run.txt"
[replay]
epoch = "100ms"
""",
    "c.toml": """version = 1
name = "cxl preferred"
[machine]
nodes = [{memory = "256MiB", cpus = "0-7"}, {memory = "256MiB", cpus = "8-15"},
         {memory = "1GiB", cpus = ""}]
distance = [[10, 21, 14], [21, 10, 24], [14, 24, 10]]
[policy]
task = "preferred:2"
[placement]
cpu_map = "spread"
[cost]
mlc_latency = "mlc/spr_cxl_latency.txt"
[replay]
epoch = "20000"
""",
}


@pytest.fixture
def configs(tmp_path):
    (tmp_path / "mlc").mkdir()
    for f in MLC.iterdir():
        (tmp_path / "mlc" / f.name).write_text(f.read_text())
    paths = []
    for name, text in CONFIGS.items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    return paths


def test_compare_reproduces_separate_replays_row_by_row(tmp_path, configs, capsys):
    out = tmp_path / "table.parquet"
    args = ["compare", str(TRACE)] + [x for c in configs for x in ("-c", c)]
    assert main(args + ["-o", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:3] == ["config", "trace", "events"] and len(printed) == 4
    table = pq.read_table(out).to_pylist()
    assert [r["config"] for r in table] == ["2s default", "4s interleave, balancing",
                                           "cxl preferred"]
    for k, cfg in enumerate(configs):
        rep = tmp_path / f"rep{k}"
        assert main(["replay", str(TRACE), "-c", cfg, "--out", str(rep),
                     "--no-progress"]) == 0
        row = table[k]
        counters = dict(zip(*pq.read_table(rep / "counters.parquet").to_pydict().values()))
        pl = pq.read_table(rep / "placement.parquet").to_pydict()     # no pandas in CI
        pages = np.bincount(pl["node"], weights=pl["pages"]).astype(int)
        acc = {k: np.array(v) for k, v in
               pq.read_table(rep / "access_matrix.parquet").to_pydict().items()}
        both = acc["reads"] + acc["writes"]
        total, local = both.sum(), both[acc["cpu_node"] == acc["mem_node"]].sum()
        cost = pq.read_table(rep / "cost_epochs.parquet").column("estimated_ns").to_numpy()
        assert row["events"] == 50_000
        assert [row[f"pages_node{n}"] for n in range(len(pages))] == pages.tolist()
        assert row["remote_fraction"] == pytest.approx((total - local) / total)
        assert row["numa_hint_faults"] == counters["numa_hint_faults"]
        assert row["numa_pages_migrated"] == counters["numa_pages_migrated"]
        assert row["est_stall_ms"] == pytest.approx(cost.sum() / 1e6)
        meta = pq.read_schema(rep / "nodes.parquet").metadata
        prov = json.loads(meta[b"fastnuma.provenance"])
        assert prov["config"]["name"] == row["config"]
        assert prov["trace"]["bytes"] == TRACE.stat().st_size
        assert len(prov["trace"]["fingerprint"]) == 32
    assert table[0]["ratio"] == 1.0
    assert table[1]["numa_hint_faults"] == 0                 # interleave: nothing misplaced
    assert table[2]["pages_node2"] > 0 and table[0]["pages_node3"] is None
    assert table[1]["pages_node2"] > 0


def test_python_compare_vary_and_csv(tmp_path):
    base = RunConfig.from_dict({"machine": {"preset": "two_socket"},
                                "replay": {"epoch": "1000000"}})
    cfgs = vary(base, "policy", split_values("policy", "default,membind:0,1,interleave:all"))
    assert [c.policy for c in cfgs] == ["default", "membind:0,1", "interleave:all"]
    reports = []
    t = compare(str(TRACE), cfgs, reports=reports)
    assert isinstance(t, pa.Table) and t.num_rows == 3
    assert t.column("config").to_pylist()[2] == "policy=interleave:all"
    assert reports[2].placement[1].tolist() == [t.column("pages_node0")[2].as_py(),
                                                t.column("pages_node1")[2].as_py()]
    csv = tmp_path / "t.csv"
    assert main(["compare", str(TRACE), "--topology", "two_socket", "--vary",
                 "kernel.numa_balancing=0,1", "-o", str(csv)]) == 0
    lines = csv.read_text().splitlines()
    assert len(lines) == 3 and lines[1].startswith('"kernel.numa_balancing=0"')


def test_run_config_errors_name_file_and_key(tmp_path):
    bad = {"version = 2\n": "version = 2", "[machin]\n": "unknown key 'machin'",
           "[policy]\ntask = 'membind:9'\n": "not on this machine",
           "[cost]\nfault_ns = -1\n": "cost.fault_ns",
           "[placement]\ncpu_map = 'zigzag'\n": "cpu_map 'zigzag'",
           "[replay]\nepochs = 1\n": "replay.epochs", "x = [\n": "x.toml"}
    for text, msg in bad.items():
        p = tmp_path / "x.toml"
        p.write_text(text)
        with pytest.raises(ValueError, match=msg):
            cfg = RunConfig.from_toml(p)
            fn.Simulator(cfg.topology(), **cfg.kernel)
            from fastnuma.numactl import parse_policy
            parse_policy(cfg.policy, cfg.topology())
    assert main(["compare", str(TRACE)]) == 1


def test_sizes_and_round_trip():
    assert parse_size("64GiB", "x") == 64 << 30 and parse_size("512 MiB", "x") == 512 << 20
    assert parse_size(4096, "x") == 4096 and parse_size("1.5g", "x") == 3 << 29
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots", "machine.nodes[0].memory")
    cfg = RunConfig.from_dict({"machine": {"preset": "cxl"}, "policy": {"task": "membind:2"},
                               "placement": {"cpu_map": "modulo", "cpunodebind": "0"},
                               "kernel": {"thp": "always"}, "cost": {"local_ns": 80.0}})
    again = RunConfig.from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()


def test_report_long_epochs_numa_maps_and_modes(tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["replay", str(TRACE), "--topology", "four_socket", "--interleave=all",
                     "--epoch", "200ms", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    finally:
        os.umask(old)
    r = tmp_path / "r"
    for f in r.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name
    long = {k: np.array(v) for k, v in pq.read_table(r / "epoch_nodes.parquet")
            .to_pydict().items()}
    epochs = pq.read_table(r / "epochs.parquet").to_pydict()
    assert len(long["epoch"]) == 4 * len(epochs["accesses"])
    assert np.bincount(long["epoch"], weights=long["accesses_to"]).tolist() == \
        epochs["accesses"]
    assert long["pages_used"][long["node"] == 1].tolist() == epochs["pages_node1"]
    maps = pq.read_table(r / "numa_maps.parquet").to_pylist()
    assert maps and all(m["pid"] == 1 for m in maps) and "interleave:0-3" in maps[0]["line"]
    meta = pq.read_schema(r / "epochs.parquet").metadata
    assert meta[b"fastnuma.version"] == fn.__version__.encode()
    prov = json.loads(meta[b"fastnuma.provenance"])
    assert prov["config"]["policy"] == {"task": "interleave:all"}
    assert prov["machine"]["distance"][0] == [10, 21, 31, 21]
    summary = json.loads((r / "summary.json").read_text())
    assert summary["provenance"]["trace"]["path"]
    est = pq.read_table(r / "cost_epochs.parquet").column("estimated_ns").to_numpy().sum()
    assert summary["cost"]["estimated_ns"] == pytest.approx(est)


def test_several_traces_each_compared_to_its_own_first_row():
    base = RunConfig.from_dict({"machine": {"preset": "four_socket"}})
    cfgs = vary(base, "policy", ["default", "interleave:all"])
    t = compare([str(TRACE), str(ROOT / "traces" / "lazy_4node.arrow")], cfgs).to_pylist()
    assert [(r["trace"], r["config"]) for r in t] == [
        (name, f"policy={p}") for name in ("zipf_4node.parquet", "lazy_4node.arrow")
        for p in ("default", "interleave:all")]
    assert t[0]["ratio"] == t[2]["ratio"] == 1.0
    assert t[3]["ratio"] == pytest.approx(t[3]["est_stall_ms"] / t[2]["est_stall_ms"])
