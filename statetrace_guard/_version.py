"""The guard's version, kept in one place for the package and its records."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
