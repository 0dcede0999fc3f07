"""Exception types. Each subclasses a builtin so callers may catch either."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A model, block, adapter or task configuration is invalid."""


class UnknownNameError(KeyError):
    """A name is not in a registry. The message lists near matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt, tampered with, or does not match the model."""


class InputError(ValueError):
    """User input (text, image, tensor) cannot be turned into a sequence."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """Build an error for an unknown registry name that suggests the closest known names."""
    known = sorted(known)
    near = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    listing = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Known {kind}s: {listing}")
