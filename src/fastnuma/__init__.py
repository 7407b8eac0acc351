"""fastnuma: a simulator of Linux NUMA memory placement.

The API mirrors Linux's: the same call names and constants (with their Linux values), and
failed system calls raise OSError with Linux's errno. See README.md and docs/api.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import constants as _constants
from ._version import __version__
from .constants import *  # noqa: F401,F403  (MPOL_*, MAP_*, MADV_*, ... as in Linux)
from .errors import BAD_ADDRESS, OutOfMemory, SegmentationFault, TraceError
from .topology import Topology

if TYPE_CHECKING:
    from .engine import Simulator
    from .report import Report

__all__ = sorted(
    [name for name in vars(_constants) if name.isupper()]
    + ["BAD_ADDRESS", "CostModel", "CpuPlacement", "OutOfMemory", "Report", "RunConfig", "SegmentationFault",
       "Simulator", "TaskPolicy", "Topology", "TraceError", "__version__", "compare", "run",
       "vary"])

_LAZY = {"Simulator": "engine", "Report": "report",
         # what-if runs (docs/run-config.md)
         "RunConfig": "runconfig", "CostModel": "costmodel", "compare": "whatif",
         "vary": "whatif", "run": "whatif", "CpuPlacement": "numactl", "TaskPolicy": "numactl"}


def __getattr__(name: str):
    """``Simulator`` (and with it Numba and the kernels) and ``Report`` (pyarrow) are
    imported on first use, so that ``import fastnuma`` and the command line's
    non-simulating commands start fast."""
    if name in _LAZY:
        from importlib import import_module
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastnuma' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
