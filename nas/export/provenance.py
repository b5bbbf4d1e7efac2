"""Where an export came from: the version of this package, which every export records (the
JSON document's provenance, the model card's footer, the standalone source's header)."""

from __future__ import annotations

from importlib import metadata

__all__ = ["package_version"]


def package_version() -> str:
    """The installed version of ``nas-service``; ``"unknown"`` in a bare checkout."""
    try:
        return metadata.version("nas-service")
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "unknown"
