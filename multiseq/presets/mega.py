"""Mega and Mega-chunk presets (`mega_{adapter}_{size}`, `mega_chunk_{adapter}_{size}`), no positional embedding.

Mega carries position through its EMA and relative bias, so the embedding adds none. `mega_chunk` attends within
chunks of 128 tokens / pixels (16 patches for the 64-patch grid), as Mega-chunk on LRA.
"""

from multiseq.presets._common import register_family

_COMMON = {"ndim": 16, "zdim": 64, "attention_fn": "softmax", "rel_pos": "simple", "ffn_mult": 2.0}

register_family("mega", positional="none", options=dict(_COMMON))
register_family("mega_chunk", adapters=("bytes", "pixels"), positional="none", options={**_COMMON, "chunk": 128})
register_family("mega_chunk", adapters=("patches",), positional="none", options={**_COMMON, "chunk": 16})
