"""Shared core: layers, networks, losses, data, config, checkpoints, logging, metrics."""
from common.version import __version__

__all__ = ["__version__"]
