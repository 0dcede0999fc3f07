"""Block registry: every backbone layer type is registered by name.

The block contract:

    block = BlockClass(dim, *, causal=False, dropout=0.0, device=None, dtype=None, **options)
    y = block(x, mask)      # x: (B, L, D) float, mask: (B, L) bool or None (True = real token) -> y: (B, L, D)

A block handles padding itself: outputs at real positions never depend on values at padded positions, and a row
whose positions are all padding yields finite output (every registered block is tested for it). Empty input (batch
0 or length 0) gives an empty `(B, L, D)` output without running the block: `register_block` wraps `forward` so
that no block sees a zero-sized dimension (FFT sizes, chunk counts and reductions would fail on one). A block that
must run on empty input anyway (e.g. to pass carried state on) sets `handles_empty = True`.
Class attributes a block may set:

* `manages_residual = True`: the block applies its own norm/residual/feed-forward (e.g. Mega); the backbone then
  calls `x = block(x, mask)` instead of `x = x + block(norm(x), mask)` and adds no feed-forward.
* `wrapper = True`: the block wraps another block, named after a `+` (`contextpool+local`); it receives the inner
  block instance as `inner=`. Options for the inner block go in `options["inner"]`.

Parameters that need their own optimiser settings (SSM state matrices, EMA coefficients) carry an attribute
`_optim = {"lr": ..., "weight_decay": 0.0}`; see `mark_optim`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from multiseq.errors import ConfigError, unknown_name

_BLOCKS: dict[str, type[nn.Module]] = {}


def register_block(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering a block under `name` (lower case, no `+`)."""
    if "+" in name or name != name.lower():
        raise ValueError(f"block names are lower case without '+', got {name!r}")

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _BLOCKS and _BLOCKS[name] is not cls:
            raise ValueError(f"block {name!r} is already registered by {_BLOCKS[name].__qualname__}")
        _BLOCKS[name] = cls
        cls.block_name = name  # type: ignore[attr-defined]
        if not getattr(cls, "handles_empty", False) and not getattr(cls.forward, "_empty_guard", False):
            cls.forward = _empty_guard(cls.forward)  # type: ignore[method-assign]
        return cls

    return deco


def _empty_guard(forward: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Wrap a block's `forward(x, mask, ...)`: `x` (B, L, D) with B == 0 or L == 0 -> an empty (B, L, D) result."""

    @functools.wraps(forward)
    def guarded(self: nn.Module, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if x.shape[0] == 0 or x.shape[1] == 0:
            return x * 0  # keeps the autograd graph (an empty gradient), dtype and device
        return forward(self, x, *args, **kwargs)

    guarded._empty_guard = True  # type: ignore[attr-defined]
    return guarded


def list_blocks() -> list[str]:
    """Names of all registered blocks, sorted."""
    _load_all()
    return sorted(_BLOCKS)


def get_block_class(name: str) -> type[nn.Module]:
    """The class registered as `name`; an unknown name raises with near matches."""
    _load_all()
    if name not in _BLOCKS:
        raise unknown_name("block", name, _BLOCKS)
    return _BLOCKS[name]


def build_block(
    name: str,
    dim: int,
    *,
    causal: bool = False,
    dropout: float = 0.0,
    device: Any = None,
    dtype: Any = None,
    **options: Any,
) -> nn.Module:
    """Instantiate a registered block. `a+b` builds wrapper `a` around block `b`.

    Args:
        name: registered name, or `wrapper+inner`.
        dim: model width D.
        causal, dropout, device, dtype: forwarded to the block.
        **options: block-specific keyword arguments; `inner` (a dict) holds the inner block's options.
    """
    common = dict(causal=causal, dropout=dropout, device=device, dtype=dtype)
    if "+" in name:
        outer, inner_name = name.split("+", 1)
        cls = get_block_class(outer)
        if not getattr(cls, "wrapper", False):
            raise ConfigError(f"block {outer!r} is not a wrapper, so {name!r} is not a valid composition")
        inner_opts = dict(options.pop("inner", {}) or {})
        inner = build_block(inner_name, dim, **common, **inner_opts)
        return _construct(cls, name, dim, common, {**options, "inner": inner})
    cls = get_block_class(name)
    return _construct(cls, name, dim, common, options)


def accepted_options(cls: type[nn.Module]) -> set[str] | None:
    """Keyword names a block's constructor accepts, following `**kwargs` up the class hierarchy.

    Returns None when some constructor takes arbitrary keywords (nothing can be checked).
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is nn.Module or klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        names |= {p for p in params if p not in ("self", "dim")}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return names - {n for n, p in params.items() if p.kind is inspect.Parameter.VAR_POSITIONAL}
    return None


def _construct(cls: type[nn.Module], name: str, dim: int, common: dict, options: dict) -> nn.Module:
    valid = accepted_options(cls)
    if valid is not None:
        for key in options:
            if key not in valid:
                raise ConfigError(f"block {name!r} has no option {key!r}; valid options: {', '.join(sorted(valid))}")
    return cls(dim, **common, **options)


def mark_optim(param: nn.Parameter, lr: float | None = None, weight_decay: float = 0.0) -> nn.Parameter:
    """Tag a parameter with its own optimiser settings (e.g. SSM `A`, `B`, `dt`: own lr, no weight decay)."""
    opts: dict[str, float] = {"weight_decay": weight_decay}
    if lr is not None:
        opts["lr"] = lr
    param._optim = opts  # type: ignore[attr-defined]
    return param


_loaded = False


def _load_all() -> None:
    # Importing the package imports every block module, which registers its blocks.
    global _loaded
    if not _loaded:
        _loaded = True
        import multiseq.blocks  # noqa: F401
