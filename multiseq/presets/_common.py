"""Building blocks for presets: standard adapters, sizes, and a helper registering a family's grid of presets."""

from __future__ import annotations

from typing import Any

from multiseq.config import AdapterConfig, BlockSpec, HeadConfig, ModelConfig
from multiseq.models import register_model

# width, depth per size; heads are chosen by the family.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"width": 64, "depth": 2},
    "small": {"width": 128, "depth": 4},
    "base": {"width": 256, "depth": 6},
}

ADAPTERS: dict[str, AdapterConfig] = {
    # LRA Text: UTF-8 bytes, 1K..4K.
    "bytes": AdapterConfig("bytes", max_length=1024),
    # LRA Image / Pathfinder-32: 32x32 grayscale pixels as tokens.
    "pixels": AdapterConfig("pixels", max_length=1024, options={"image_size": [32, 32]}),
    # ViT patches of 32x32 RGB images.
    "patches": AdapterConfig("patches", max_length=64, options={"image_size": [32, 32], "patch_size": 4}),
}


def register_family(
    block: str | list[Any],
    *,
    prefix: str | None = None,
    adapters: tuple[str, ...] = ("bytes", "pixels", "patches"),
    sizes: tuple[str, ...] = ("tiny", "small", "base"),
    positional: str = "learned",
    ffn_mult: float = 4.0,
    pool: str = "mean",
    options: dict[str, Any] | None = None,
    **config: Any,
) -> list[str]:
    """Register `{prefix}_{adapter}_{size}` presets for one block (or a layer list) with shared options.

    Args:
        block: a registered block name, or a list of names / BlockSpecs (a hybrid, one per layer).
        prefix: preset name prefix (default: the block name).
        options: block options applied to every layer given by name.
        **config: further `ModelConfig` fields.

    Returns:
        The registered names.
    """
    if isinstance(block, str):
        blocks: tuple[BlockSpec, ...] = (BlockSpec(block, dict(options or {})),)
        prefix = prefix or block.replace("+", "_")
    else:
        blocks = tuple(BlockSpec(b, dict(options or {})) if isinstance(b, str) else b for b in block)
        if prefix is None:
            raise ValueError("a hybrid layer list needs a preset prefix")
    names = []
    for adapter in adapters:
        for size in sizes:
            name = f"{prefix}_{adapter}_{size}"
            dims = dict(SIZES[size])
            if len(blocks) > 1:
                dims["depth"] = len(blocks)

            def preset(name: str = name, adapter: str = adapter, dims: dict[str, int] = dims) -> ModelConfig:
                return ModelConfig(
                    name=name,
                    adapter=ADAPTERS[adapter],
                    blocks=blocks,
                    positional=positional,
                    ffn_mult=ffn_mult,
                    head=HeadConfig(pool=pool),
                    **dims,
                    **config,
                )

            register_model(preset, name=name)
            names.append(name)
    return names
