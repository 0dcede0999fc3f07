"""Frozen, JSON-serialisable description of a whole model.

A `ModelConfig` names an adapter (how raw input becomes a sequence), the positional embedding, the list of
backbone blocks with per-block options, the sizes and the head. It travels inside every checkpoint, so that a
model can be rebuilt from its weights file alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from multiseq.errors import ConfigError

POSITIONAL = ("learned", "sinusoidal", "none")
POOLS = ("mean", "cls", "last", "max", "meanmax")
HEAD_KINDS = ("linear", "mlp", "dual")
NORMS = ("layer", "rms")


@dataclass(frozen=True)
class AdapterConfig:
    """How raw input becomes `(x, mask)`.

    Attributes:
        kind: registered adapter name (`bytes`, `pixels`, `patches`, `render`, ...).
        max_length: longest sequence the adapter emits (tokens, pixels or patches).
        options: adapter-specific keyword arguments (see each adapter's docstring).
    """

    kind: str = "bytes"
    max_length: int = 1024
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockSpec:
    """One backbone layer: a registered block name and its options (e.g. `{"window": 128}`)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StemConfig:
    """Early downsampling between the embedding and the blocks (a strided 1-D convolution).

    Long byte, pixel or patch sequences are shortened by `stride` before the first block, so every block runs on
    `ceil(L / stride)` positions; each output position sees `kernel` inputs centred on its `stride` window.

    Attributes:
        stride: positions merged into one (1 = no stem).
        kernel: convolution width in input positions (0 = `2 * stride`, or 1 without a stem); `kernel - stride` must be even.
        width: embedding width before the stem (0 = the model width).
    """

    stride: int = 1
    kernel: int = 0
    width: int = 0

    @property
    def kernel_size(self) -> int:
        return self.kernel or (2 * self.stride if self.stride > 1 else 1)


@dataclass(frozen=True)
class HeadConfig:
    """Task head: masked pooling then a classifier.

    Attributes:
        kind: `linear`, `mlp`, or `dual` (two-document tasks: `[u, v, u*v, u-v]` then an MLP).
        pool: `mean`, `cls`, `last`, `max` or `meanmax` (mean and max concatenated); masked, so padding never
            enters.
        hidden: hidden width of the MLP (`mlp` and `dual`); 0 means the model width.
    """

    kind: str = "linear"
    pool: str = "mean"
    hidden: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """A whole model: adapter -> embedding -> residual stack of blocks -> head.

    Attributes:
        name: preset name this config came from (informational).
        adapter: see `AdapterConfig`.
        blocks: one `BlockSpec` per layer, or a single spec repeated `depth` times.
        width: model width D.
        depth: number of layers.
        num_classes: output classes of the head; 0 makes a feature extractor whose head only pools (timm's
            convention): the model returns `(B, pooled width)` features instead of logits.
        positional: `learned`, `sinusoidal` or `none` (S4 and Mega need none).
        ffn_mult: feed-forward expansion after each block (0 disables it); blocks that manage their
            own residual path (e.g. Mega) skip it.
        norm: `layer` or `rms` for the pre-norms and the final norm.
        dropout: dropout on residual branches.
        causal: blocks see only the past when True.
        head: see `HeadConfig`.
        stem: see `StemConfig`; downsamples the embedded sequence before the blocks.
        layer_scale: initial value of learned per-channel scales on every residual branch (LayerScale, Touvron et
            al. 2021; timm's `init_values`); 0 disables them. A small value (1e-2) starts each layer close to the
            identity, so a deep or freshly initialised stack does not drown what the embedding and stem provide.
            Blocks that manage their own residual (Mega) keep theirs.
        grad_checkpointing: recompute block activations in backward to save memory.
    """

    name: str = ""
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    blocks: tuple[BlockSpec, ...] = (BlockSpec("attention"),)
    width: int = 128
    depth: int = 2
    num_classes: int = 2
    positional: str = "learned"
    ffn_mult: float = 4.0
    norm: str = "layer"
    dropout: float = 0.0
    causal: bool = False
    head: HeadConfig = field(default_factory=HeadConfig)
    stem: StemConfig = field(default_factory=StemConfig)
    layer_scale: float = 0.0
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        # Accept plain lists/strings for blocks so presets and overrides read naturally.
        blocks = self.blocks
        if isinstance(blocks, (str, BlockSpec, dict)):
            blocks = (blocks,)
        object.__setattr__(self, "blocks", tuple(_as_block(b) for b in blocks))
        if isinstance(self.adapter, dict):
            object.__setattr__(self, "adapter", _from_dict(AdapterConfig, self.adapter, "adapter"))
        if isinstance(self.head, dict):
            object.__setattr__(self, "head", _from_dict(HeadConfig, self.head, "head"))
        if isinstance(self.stem, dict):
            object.__setattr__(self, "stem", _from_dict(StemConfig, self.stem, "stem"))
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` with a clear message on any inconsistent field."""
        _check(isinstance(self.width, int) and self.width > 0, f"width must be a positive int, got {self.width!r}")
        _check(isinstance(self.depth, int) and self.depth > 0, f"depth must be a positive int, got {self.depth!r}")
        _check(
            isinstance(self.num_classes, int) and self.num_classes >= 0,
            f"num_classes must be an int >= 1 (classes), or 0 for a feature extractor; got {self.num_classes!r}",
        )
        _check(
            self.num_classes > 0 or self.head.kind != "dual",
            "num_classes=0 (a feature extractor) needs a single-input head; a dual head classifies document pairs",
        )
        _check(len(self.blocks) >= 1, "blocks must name at least one block")
        _check(
            len(self.blocks) in (1, self.depth),
            f"blocks lists {len(self.blocks)} layers but depth is {self.depth}; give one block (repeated) "
            f"or exactly depth blocks",
        )
        _check(self.positional in POSITIONAL, f"positional must be one of {POSITIONAL}, got {self.positional!r}")
        _check(self.norm in NORMS, f"norm must be one of {NORMS}, got {self.norm!r}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout!r}")
        _check(self.ffn_mult >= 0, f"ffn_mult must be >= 0, got {self.ffn_mult!r}")
        _check(
            isinstance(self.layer_scale, (int, float)) and 0 <= self.layer_scale <= 1,
            f"layer_scale must lie in [0, 1] (0 disables it), got {self.layer_scale!r}",
        )
        _check(self.head.pool in POOLS, f"head.pool must be one of {POOLS}, got {self.head.pool!r}")
        _check(self.head.kind in HEAD_KINDS, f"head.kind must be one of {HEAD_KINDS}, got {self.head.kind!r}")
        stem = self.stem
        _check(isinstance(stem.stride, int) and stem.stride >= 1, f"stem.stride must be an int >= 1, got {stem.stride!r}")
        _check(isinstance(stem.width, int) and stem.width >= 0, f"stem.width must be an int >= 0, got {stem.width!r}")
        _check(
            isinstance(stem.kernel, int) and (stem.kernel == 0 or stem.kernel >= stem.stride)
            and (stem.kernel_size - stem.stride) % 2 == 0,
            f"stem.kernel must be 0 (= 2 * stride) or >= stride with kernel - stride even, got kernel {stem.kernel!r} "
            f"for stride {stem.stride}",
        )
        _check(
            stem.stride == 1 or self.head.pool != "cls",
            "a stem (stem.stride > 1) cannot be combined with head.pool='cls'; use mean, max, meanmax or last",
        )
        _check(
            isinstance(self.adapter.max_length, int) and self.adapter.max_length >= 1,
            f"adapter.max_length must be an int >= 1, got {self.adapter.max_length!r}",
        )

    @property
    def layers(self) -> tuple[BlockSpec, ...]:
        """The block spec of every layer, `depth` of them."""
        return self.blocks * self.depth if len(self.blocks) == 1 else self.blocks

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with fields replaced. Nested configs may be given as partial dicts, merged into the current."""
        return with_overrides(self, overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict; unknown keys at any level raise `ConfigError` naming the key and the valid ones."""
        return _from_dict(cls, data, "model config")

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"model config is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"model config JSON must be an object, got {type(data).__name__}")
        return cls.from_dict(data)


def with_overrides(config: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """Apply overrides to a config. `adapter`, `head` and `stem` may be partial dicts (merged)."""
    known = {f.name for f in fields(ModelConfig)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(_unknown_key_message("model config", key, known))
        if key in ("adapter", "head", "stem") and isinstance(value, dict):
            current = dataclasses.asdict(getattr(config, key))
            if key == "adapter" and "options" in value:
                value = {**value, "options": {**current["options"], **value["options"]}}
            value = {**current, **value}
        changes[key] = value
    return dataclasses.replace(config, **changes)


def _as_block(b: Any) -> BlockSpec:
    if isinstance(b, BlockSpec):
        return b
    if isinstance(b, str):
        return BlockSpec(b)
    if isinstance(b, dict):
        return _from_dict(BlockSpec, b, "block spec")
    raise ConfigError(f"a block must be a name, a BlockSpec or a dict, got {type(b).__name__}")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _unknown_key_message(where: str, key: str, known: set[str]) -> str:
    near = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
    return f"unknown key {key!r} in {where}.{hint} Valid keys: {', '.join(sorted(known))}"


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(_unknown_key_message(where, key, known))
    kwargs = dict(data)
    if cls is ModelConfig:
        if "adapter" in kwargs:
            kwargs["adapter"] = _from_dict(AdapterConfig, kwargs["adapter"], "adapter")
        if "head" in kwargs:
            kwargs["head"] = _from_dict(HeadConfig, kwargs["head"], "head")
        if "stem" in kwargs:
            kwargs["stem"] = _from_dict(StemConfig, kwargs["stem"], "stem")
        if "blocks" in kwargs:
            if not isinstance(kwargs["blocks"], (list, tuple)):
                raise ConfigError("blocks must be a list of block specs")
            kwargs["blocks"] = tuple(_as_block(b) for b in kwargs["blocks"])
    try:
        return cls(**kwargs)
    except TypeError as e:  # e.g. wrong value types reaching __post_init__
        raise ConfigError(f"invalid {where}: {e}") from None
