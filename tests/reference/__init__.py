"""The plain-Python reference model of a fastnuma machine (the differential-test oracle).

Never imported by src/; imports only fastnuma.constants and fastnuma.errors from fastnuma.
"""
from .model import RefMachine
from .topology import RefTopology, build_zonelists

__all__ = ["RefMachine", "RefTopology", "build_zonelists"]
