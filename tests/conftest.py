"""Shared fixtures: every rule test runs on the reference model and on the engine.

``machine_cls`` is RefMachine ("model") or fastnuma.Simulator ("engine", imported lazily;
skipped while it cannot be imported). ``make(topology_kwargs, **opts)`` builds a machine of
that kind: RefTopology for the model, fastnuma.Topology for the engine, same numbers.
"""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))                  # tests.reference
try:
    import fastnuma.constants  # noqa: F401
except ImportError:                                # running from a checkout, not installed
    sys.path.insert(0, str(ROOT / "src"))

from tests.reference import RefMachine, RefTopology  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: heavy cases (many hypothesis examples, large sizes); -m slow")
    config.addinivalue_line(
        "markers", "soak: long campaigns run before a release (differential soak, trace "
        "fuzzing); skipped unless selected with -m soak")


def pytest_collection_modifyitems(config, items):
    """Soak tests run only when the -m expression names them."""
    if "soak" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="soak campaign: run with -m soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


def _engine():
    try:
        import fastnuma
        return fastnuma.Simulator, fastnuma.Topology
    except Exception:                               # noqa: BLE001 - any import failure
        pytest.skip("engine not built yet")


@pytest.fixture(params=["model", "engine"])
def machine_cls(request):
    """The machine class under test: RefMachine or fastnuma.Simulator."""
    if request.param == "model":
        return RefMachine
    return _engine()[0]


@pytest.fixture
def make(machine_cls):
    """make(topology_kwargs, **opts) -> a machine of the parametrized kind."""
    def build(topology_kwargs, **opts):
        if machine_cls is RefMachine:
            topo = RefTopology(**topology_kwargs)
        else:
            topo = _engine()[1](**topology_kwargs)
        return machine_cls(topo, **opts)
    return build
