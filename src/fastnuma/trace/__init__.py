"""Trace format v1 (docs/trace-format.md): schema, streaming reader and
writer, synthetic scenarios, and the one-pass summary of ``fastnuma info``."""
from .generate import SCENARIOS, generate, write_trace
from .info import trace_info
from .reader import TraceBatch, open_trace
from .writer import TraceWriter

__all__ = ["TraceBatch", "open_trace", "TraceWriter", "SCENARIOS", "generate", "write_trace",
           "trace_info"]
