"""Hybrid stacks: layer lists mixing registered blocks (a hybrid is a config line, not a class).

* `spade_{adapter}_{size}`: SPADE (Zuo et al., 2022): an S4D bottom layer under local attention layers.
* `s4_mega_{adapter}_{size}`: an S4D bottom layer under Mega layers.
* `contextpool_stack_{adapter}_{size}`: local attention, then ContextPool + local attention in every later layer:
  the paper places ContextPool after each attention block, so every attention but the first sees pooled features.

A hybrid is registered only when all its blocks are registered (`multiseq.blocks.list_blocks()`).
No positional embedding where an S4D layer comes first: its convolution carries order.
"""

from __future__ import annotations

from multiseq.blocks import list_blocks
from multiseq.config import BlockSpec
from multiseq.presets._common import SIZES, register_family
from multiseq.presets.contextpool import GRID_POOL, POOL

LOCAL = BlockSpec("local", {"heads": 4, "window": 128})
S4D = BlockSpec("s4d", {})
MEGA = BlockSpec("mega", {"ndim": 16, "zdim": 64, "attention_fn": "softmax", "rel_pos": "simple", "ffn_mult": 2.0})


def _cp_local(pool: dict) -> BlockSpec:
    return BlockSpec("contextpool+local", {**pool, "inner": dict(LOCAL.options)})


def _base_names(spec: BlockSpec) -> set[str]:
    return set(spec.name.split("+"))


def _stack(bottom: BlockSpec, rest: BlockSpec, depth: int) -> list[BlockSpec]:
    return [bottom] + [rest] * (depth - 1)


# name -> (layer list for a depth and an adapter, positional embedding)
HYBRIDS = {
    "spade": (lambda depth, adapter: _stack(S4D, LOCAL, depth), "none"),
    "s4_mega": (lambda depth, adapter: _stack(S4D, MEGA, depth), "none"),
    "contextpool_stack": (
        lambda depth, adapter: _stack(LOCAL, _cp_local(GRID_POOL if adapter == "patches" else POOL), depth),
        "learned",
    ),
}


def registrable(name: str) -> bool:
    """True when every block of hybrid `name` is registered."""
    layers, _ = HYBRIDS[name]
    needed = set().union(*(_base_names(s) for s in layers(2, "bytes")))
    return needed <= set(list_blocks())


for _name, (_layers, _positional) in HYBRIDS.items():
    if not registrable(_name):
        continue
    for _adapter in ("bytes", "pixels", "patches"):
        for _size, _dims in SIZES.items():
            register_family(
                _layers(_dims["depth"], _adapter),
                prefix=_name,
                adapters=(_adapter,),
                sizes=(_size,),
                positional=_positional,
            )
