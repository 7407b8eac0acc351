"""fastnuma: a simulator of Linux NUMA memory placement.

The API mirrors Linux's: the same call names and constants (with their Linux values), and
failed system calls raise OSError with Linux's errno. See README.md and docs/api.md.
"""
from .constants import *  # noqa: F401,F403  (MPOL_*, MAP_*, MADV_*, ... as in Linux)
from .engine import Simulator
from .errors import OutOfMemory, SegmentationFault, TraceError
from .topology import Topology

__version__ = "0.1.0"
