"""CPU recipes: models and training settings that learn within a wall-clock budget on a 2-core machine.

    create_model("s4d_imdb_bytes")                 # the model
    recipe("s4d_imdb_bytes")                       # {"batch_size": 32, "lr": 0.003, ..., "budget_minutes": 30}
    multiseq train --task imdb --model s4d_imdb_bytes            # the CLI takes the recipe as its defaults

What makes them learn in minutes rather than hours (each measured on IMDb validation; see the results table in
`benchmarks/results/learning-cpu.md`):
* an early downsampling stem (`StemConfig`): bytes are merged 4 to 1 by a strided convolution before the first
  block, so the blocks run on 512 positions instead of 2,048;
* LayerScale (`layer_scale=0.01`): each residual branch starts near zero, so the stem's n-gram features reach the
  head from the first step and the S4D layer adds long-range context as it learns (development runs scored on
  1,000 validation reviews: without it, 0.65 after 16,000 training reviews and 0.70 after 22,600; with it, 0.74
  after 10,200 and 0.76 after 12,300);
* mean and max pooling concatenated (`meanmax`): max pooling finds the few decisive phrases of a long review;
* one S4D layer of width 128 with a 2x feed-forward, batch 32, AdamW at 3e-3, weight decay 0.05, cosine decay.

The Long Range Arena recipes (`s4d_listops_tokens`, `s4d_pathfinder_pixels`, `s4d_image_pixels`) use the same
parts with 15- and 20-minute budgets. Pixel images are flattened row by row, so a stem of stride 32 (one image row per
position) with a kernel of 96 (the row and its two neighbours) turns a 32 x 32 image into 32 positions that each
see a 3-row band; the S4D layers then mix the rows.
"""

from __future__ import annotations

from typing import Any

from multiseq.config import AdapterConfig, BlockSpec, HeadConfig, ModelConfig, StemConfig
from multiseq.models import register_model

_TRAIN: dict[str, dict[str, Any]] = {}


def recipe(name: str) -> dict[str, Any] | None:
    """Training defaults of a CPU recipe preset (TrainConfig fields plus `budget_minutes`), or None."""
    return dict(_TRAIN[name]) if name in _TRAIN else None


def _register(name: str, config: ModelConfig, train: dict[str, Any]) -> None:
    _TRAIN[name] = train
    register_model(lambda: config, name=name)


_S4D = BlockSpec("s4d", {"d_state": 64})
_TRAIN_30_MIN = dict(batch_size=32, lr=3e-3, weight_decay=0.05, warmup_steps=30, budget_minutes=30.0)
_TRAIN_20_MIN = {**_TRAIN_30_MIN, "budget_minutes": 20.0}
_TRAIN_15_MIN = {**_TRAIN_30_MIN, "budget_minutes": 15.0}


def _s4d_recipe(name: str, adapter: AdapterConfig, depth: int = 1, dropout: float = 0.1,
                **fields: Any) -> ModelConfig:
    """S4D layers (default one) of width 128 with a 2x feed-forward, LayerScale and mean+max pooling."""
    return ModelConfig(
        name=name, adapter=adapter, blocks=(_S4D,), width=128, depth=depth, positional="none", ffn_mult=2.0,
        dropout=dropout, head=HeadConfig(pool="meanmax"), layer_scale=0.01, **fields,
    )


# Gray levels as values (a linear embedding), not as 256 tokens: with a token table the image recipe memorised its
# 45,000 training images within six epochs (training accuracy 0.998) while validation stalled.
_PIXELS_32 = AdapterConfig("pixels", max_length=1024, options={"image_size": [32, 32], "as_tokens": False})
_ROW_BANDS = StemConfig(stride=32, kernel=96, width=32)


_register(
    "s4d_imdb_bytes",
    _s4d_recipe(
        "s4d_imdb_bytes", AdapterConfig("bytes", max_length=2048), stem=StemConfig(stride=4, kernel=8, width=64)
    ),
    _TRAIN_30_MIN,
)
_register(
    "s4d_imdb_render",
    _s4d_recipe(
        "s4d_imdb_render", AdapterConfig("render", max_length=529, options={"config": "pixel", "rendering": "words"})
    ),
    _TRAIN_30_MIN,
)
_register(
    "s4d_listops_tokens",
    _s4d_recipe("s4d_listops_tokens", AdapterConfig("listops", max_length=2000), depth=2, dropout=0.0,
                stem=StemConfig(stride=4, kernel=8, width=64)),
    _TRAIN_15_MIN,
)
_register(
    "s4d_pathfinder_pixels",
    _s4d_recipe("s4d_pathfinder_pixels", _PIXELS_32, depth=3, stem=StemConfig(stride=8, kernel=24, width=32)),
    _TRAIN_15_MIN,
)
_register(
    "s4d_image_pixels",
    _s4d_recipe("s4d_image_pixels", _PIXELS_32, depth=3, stem=_ROW_BANDS),
    _TRAIN_20_MIN,
)
