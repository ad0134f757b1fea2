"""Reel's Python engine: one long-lived Wan2.2 worker process speaking NDJSON on stdin/stdout.

This package must stay cheap to import: the worker redirects stdout before any heavy library is loaded,
so nothing here may import torch or diffusers at module level.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
