"""Base video models: where the CogVideoX weights come from (hub, local folder, tiny)."""

from .hub import DEFAULT_MODEL, ResolvedModel, resolve_model

__all__ = ["DEFAULT_MODEL", "ResolvedModel", "resolve_model"]
