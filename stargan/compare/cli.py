"""The `stargan compare` command."""
from stargan.compare.core import compare

__all__ = ["compare"]
