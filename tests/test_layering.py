"""The layout of the package (issue 12): who may import whom, the one-way data path, module
and class sizes, the typed public surface, and commands that start without Numba."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastnuma

SRC = Path(fastnuma.__file__).resolve().parent
MODULES = sorted(p for p in SRC.rglob("*.py"))


def _rel(path):
    return path.relative_to(SRC).as_posix()


def _imports(path):
    """Every module ``path`` imports, as absolute dotted names (relative ones resolved)."""
    tree = ast.parse(path.read_text())
    package = ["fastnuma"] + list(path.relative_to(SRC).parent.parts)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            if node.module:
                out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)   # `from . import x`
    return out


def _internal(names):
    """The fastnuma modules among ``names`` (names that are modules or packages)."""
    return {n for n in names if n.startswith("fastnuma")
            and ((SRC.parent / (n.replace(".", "/") + ".py")).exists()
                 or (SRC.parent / n.replace(".", "/")).is_dir())}


def test_kernels_import_only_numpy_numba_llvmlite_and_layouts():
    allowed_internal = {"fastnuma.dtypes", "fastnuma.constants"}
    for path in MODULES:
        if not _rel(path).startswith("kernels/"):
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "fastnuma":
                if name in _internal({name}):
                    assert name in allowed_internal or name.startswith("fastnuma.kernels"), \
                        f"{_rel(path)} imports {name}"
            else:
                assert top in {"numpy", "numba", "llvmlite", "os", "errno", "math", "copy",
                               "threading", "atexit", "importlib", "pickle", "subprocess",
                               "sys"}, \
                    f"{_rel(path)} imports {name}"


def test_trace_package_imports_no_kernel_and_no_engine():
    allowed = {"fastnuma.constants", "fastnuma.errors", "fastnuma.trace"}
    for path in MODULES:
        if not _rel(path).startswith("trace/"):
            continue
        for name in _internal(_imports(path)):
            assert name in allowed or name.startswith("fastnuma.trace."), \
                f"{_rel(path)} imports {name}"


def _module_path(name):
    p = SRC.parent / (name.replace(".", "/") + ".py")
    return p if p.exists() else SRC.parent / name.replace(".", "/") / "__init__.py"


def _reachable(path):
    """Every fastnuma module ``path`` imports, directly or through the modules it imports."""
    seen, todo = set(), [path]
    while todo:
        for name in _internal(_imports(todo.pop())) - seen:
            seen.add(name)
            todo.append(_module_path(name))
    return seen


def test_report_imports_no_kernel_and_no_simulator():
    """The report and what it uses (its time series, the report directory writer, the
    figures drawn from it) reach no kernel and no simulator module."""
    names = _reachable(SRC / "report.py")
    forbidden = {n for n in names if n.startswith("fastnuma.kernels") or n in (
        "fastnuma.engine", "fastnuma.machine", "fastnuma.replay", "fastnuma.numa_balancing")}
    assert not forbidden, forbidden


def test_config_and_pagetable_take_layouts_from_dtypes():
    for mod in ("config.py", "pagetable.py"):
        tree = ast.parse((SRC / mod).read_text())
        top_level = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert not any((n.module or "").startswith("kernels") for n in top_level), mod


def test_nothing_imports_the_cli():
    for path in MODULES:
        if _rel(path) in ("cli.py", "__main__.py"):
            continue
        assert "fastnuma.cli" not in _imports(path), f"{_rel(path)} imports the CLI"


def test_no_module_reaches_into_another_objects_private_attributes():
    """``x._name`` only on ``self`` (or a class's own name): subsystems talk through
    public methods and attributes."""
    exempt = {"_meminfo", "_numba_box_", "_replace", "_asdict", "_fields", "_getvalue"}
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and node.attr not in exempt):
                base = node.value
                ok = isinstance(base, ast.Name) and base.id in ("self", "cls")
                assert ok, f"{_rel(path)}:{node.lineno}: .{node.attr} of {ast.unparse(base)}"


def test_files_and_classes_stay_small():
    for path in MODULES:
        n = len(path.read_text().splitlines())
        assert n <= 400, f"{_rel(path)} has {n} lines"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = [f for f in node.body
                           if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
                assert len(methods) <= 32, f"{_rel(path)}: {node.name} has {len(methods)}"


def test_no_mixins():
    for path in MODULES:
        assert "Mixin" not in path.read_text(), _rel(path)


def test_public_surface_is_typed_and_listed():
    assert (SRC / "py.typed").exists()
    for name in fastnuma.__all__:
        assert getattr(fastnuma, name) is not None or name.isupper(), name
    assert {"Simulator", "Topology", "Report", "TraceError", "__version__"} <= \
        set(fastnuma.__all__)
    report = fastnuma.Report
    assert report.__doc__ and "placement" in report.__annotations__
    sim = fastnuma.Simulator
    for name in ("spawn", "mmap", "access", "mbind", "move_pages", "replay", "vmstat"):
        hints = getattr(sim, name).__annotations__
        assert "return" in hints, name


def _run(code, cwd):
    env = dict(os.environ, PYTHONPATH=str(SRC.parent))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, env=env, check=True).stdout


def test_version_agrees_with_the_command_line(tmp_path):
    out = _run("import sys\nfrom fastnuma.cli import main\n"
               "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n", tmp_path)
    assert out.split()[:2] == ["fastnuma", fastnuma.__version__]   # then the libraries


def test_help_info_and_convert_start_without_numba(tmp_path):
    """The commands that do not simulate never import Numba (nor the kernels)."""
    (tmp_path / "in.csv").write_text("addr,cpu\n4096,0\n8192,1\n")
    code = (
        "import sys, contextlib, io\n"
        "from fastnuma.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "    assert main(['convert', 'csv', 'in.csv', '-o', 't.arrow']) == 0\n"
        "    assert main(['info', 't.arrow']) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')\n"
        "             or m.startswith('fastnuma.kernels')))\n")
    assert _run(code, tmp_path).strip() == "[]"


@pytest.mark.parametrize("rule, owner", [
    ("def next_node_in", "kernels/alloc.py"),
    ("def vma_adjust_trans_huge", "mm.py"),
    ("def pid_bit", "kernels/numa.py"),
    ("def tid_hash", "kernels/events.py"),
    ("def commit_folio_move", "kernels/migrate.py"),
    ("def block_span", "kernels/state.py"),
])
def test_a_linux_rule_is_written_once(rule, owner):
    where = [_rel(p) for p in MODULES if rule + "(" in p.read_text()]
    assert where == [owner]


def test_the_block_walk_header_is_one_helper():
    """Walks over page-table blocks take their span from kernels/state.block_span (or
    block_vpn): the PMD-key mask is written nowhere else."""
    for path in MODULES:
        text = path.read_text()
        if _rel(path) != "dtypes.py":
            assert "(1 << 27) - 1" not in text and "<< 27" not in text, _rel(path)
        if _rel(path).startswith("kernels/") and _rel(path) != "kernels/state.py":
            assert "& PMD_KEY_MASK) <<" not in text, _rel(path)


def test_the_pid_bit_is_linux_hash_32():
    """hash_32(tid, 6) = the top 6 bits of the 32-bit product with GOLDEN_RATIO_32."""
    from fastnuma.kernels.numa import pid_bit
    for tid in (0, 1, 2, 3, 1000, 65535, 1 << 20, (1 << 31) - 1, (1 << 32) - 1):
        assert pid_bit(tid) == ((tid * 0x61C88647) & 0xFFFFFFFF) >> 26
