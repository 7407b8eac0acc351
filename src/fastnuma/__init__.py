"""fastnuma: a simulator of Linux NUMA memory placement.

The API mirrors Linux's: the same call names and constants (with their Linux values), and
failed system calls raise OSError with Linux's errno. See README.md and docs/api.md.
"""
from .constants import *  # noqa: F401,F403  (MPOL_*, MAP_*, MADV_*, ... as in Linux)
from .errors import OutOfMemory, SegmentationFault, TraceError  # noqa: F401
from .topology import Topology  # noqa: F401


def __getattr__(name):
    """``Simulator`` (and with it Numba and the kernels) is imported on first use, so that
    ``import fastnuma`` and the command line's non-simulating commands start fast."""
    if name == "Simulator":
        from .engine import Simulator
        return Simulator
    if name in _WHAT_IF:                    # what-if runs (docs/run-config.md)
        import importlib
        return getattr(importlib.import_module(_WHAT_IF[name], __name__), name)
    raise AttributeError(f"module 'fastnuma' has no attribute {name!r}")

_WHAT_IF = {"RunConfig": ".runconfig", "CostModel": ".costmodel", "compare": ".whatif",
            "vary": ".whatif", "run": ".whatif", "CpuPlacement": ".numactl",
            "TaskPolicy": ".numactl"}

__version__ = "0.1.0"
