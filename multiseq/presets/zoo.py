"""The LRA zoo: the efficient transformers of the LRA comparison and later linear-time designs, on bytes and pixels,
plus the wide-single-layer and deep configurations of softmax attention."""

from multiseq.config import BlockSpec, HeadConfig, ModelConfig
from multiseq.models import register_model
from multiseq.presets._common import ADAPTERS, register_family

ZOO_OPTIONS = {
    "linformer": {"heads": 4, "rank": 64, "max_length": 1024},
    "performer": {"heads": 4, "features": 64},
    "linear": {"heads": 4},
    "kernelized": {"heads": 4, "features": 64},
    "sparse": {"heads": 4, "pattern": "strided"},
    "longformer": {"heads": 4, "window": 128, "global_tokens": 1},
    "bigbird": {"heads": 4, "block": 32, "global_blocks": 1, "random_blocks": 2},
    "reformer": {"heads": 4, "buckets": "auto", "hashes": 2, "chunk": 64},
    "sinkhorn": {"heads": 4, "block": 32},
    "synthesizer": {"heads": 4, "variant": "dense", "max_length": 1024},
    "luna": {"heads": 4, "packed": 16},
    "perceiver": {"heads": 4, "latents": 32},
    "block_recurrent": {"heads": 4, "block": 32, "state_size": 16},
    "hierarchical": {"heads": 4, "chunk": 64},
}

for _block, _options in ZOO_OPTIONS.items():
    register_family(_block, adapters=("bytes", "pixels"), sizes=("tiny", "small"), options=_options)


def _shape_preset(name: str, adapter: str, width: int, depth: int, heads: int) -> None:
    def preset() -> ModelConfig:
        return ModelConfig(
            name=name,
            adapter=ADAPTERS[adapter],
            blocks=(BlockSpec("attention", {"heads": heads}),),
            width=width,
            depth=depth,
            head=HeadConfig(pool="mean"),
        )

    register_model(preset, name=name)


# "Wide attention" study: one wide layer against a deep narrow stack of about the same parameter count.
for _adapter in ("bytes", "pixels"):
    _shape_preset(f"attention_{_adapter}_wide", _adapter, width=512, depth=1, heads=16)
    _shape_preset(f"attention_{_adapter}_deep", _adapter, width=128, depth=12, heads=4)
