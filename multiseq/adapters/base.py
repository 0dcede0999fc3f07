"""Adapter contract and registry.

An adapter turns a batch of raw inputs into `(x, mask)`:

* `x`: token ids `(B, L)` int64, features `(B, L, C)` float, or images `(B, C, H, W)` float for patch embedding;
* `mask`: `(B, L)` bool, True = real token (for images, L is the number of patches).

`embed_spec()` tells the model which embedding consumes `x`. Adapters hold no learned parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from multiseq.config import AdapterConfig
from multiseq.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class EmbedSpec:
    """What the embedding layer receives from an adapter.

    Attributes:
        kind: `token` (ids `(B, L)`), `linear` (features `(B, L, C)`) or `patch` (images `(B, C, H, W)`).
        vocab_size: number of token ids (`token`), id 0 is padding.
        in_features: C (`linear`).
        img_size, patch_size, in_chans, dynamic_pad: timm `PatchEmbed` arguments (`patch`).
        grid: (rows, cols) of the sequence when it has 2-D structure (pixels, patches), else None.
    """

    kind: str
    vocab_size: int = 0
    in_features: int = 0
    img_size: tuple[int, int] | None = None
    patch_size: int = 0
    in_chans: int = 0
    dynamic_pad: bool = False
    grid: tuple[int, int] | None = None


class Adapter:
    """Base class. Subclasses set `kind`, implement `__call__(inputs)` and `embed_spec()`."""

    kind: str = ""

    def __init__(self, max_length: int) -> None:
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ConfigError(f"max_length must be an int >= 1, got {max_length!r}")
        self.max_length = max_length

    def __call__(self, inputs: Sequence[Any]) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed_spec(self) -> EmbedSpec:  # pragma: no cover - abstract
        raise NotImplementedError


_ADAPTERS: dict[str, Callable[..., Adapter]] = {}


def register_adapter(name: str) -> Callable[[type[Adapter]], type[Adapter]]:
    def deco(cls: type[Adapter]) -> type[Adapter]:
        _ADAPTERS[name] = cls
        cls.kind = name
        return cls

    return deco


def list_adapters() -> list[str]:
    return sorted(_ADAPTERS)


def build_adapter(config: AdapterConfig) -> Adapter:
    """Instantiate the adapter an `AdapterConfig` names, with its options."""
    if config.kind not in _ADAPTERS:
        raise unknown_name("adapter", config.kind, _ADAPTERS)
    try:
        return _ADAPTERS[config.kind](max_length=config.max_length, **config.options)
    except TypeError as e:
        raise ConfigError(f"invalid options for adapter {config.kind!r}: {e}") from None


def as_batch(
    inputs: Any, single_types: tuple[type, ...], error: type[Exception] = TypeError, expected: str | None = None
) -> tuple[list[Any], bool]:
    """Normalise a single item or a sequence of items to a list; returns (items, was_single).

    Args:
        inputs: one item (an instance of `single_types`) or a sequence of items (not bytes).
        single_types: the types of one item; checked first, so a tuple here makes a tuple one item.
        error, expected: the exception raised for anything else, and what its message says was expected.
    """
    if isinstance(inputs, single_types):
        return [inputs], True
    if isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes, bytearray)):
        return list(inputs), False
    expected = expected or f"one input or a list of inputs of types {', '.join(t.__name__ for t in single_types)}"
    raise error(f"expected {expected}; got {type(inputs).__name__}")
