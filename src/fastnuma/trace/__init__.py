"""Trace format v1 (docs: shared spec trace-format.md): schema and streaming reader."""
from .reader import TraceBatch, open_trace

__all__ = ["TraceBatch", "open_trace"]
