"""LRA presets for the zoo blocks: `{block}_lra_{task}` in the common PyTorch LRA set-up that the Transformer
baseline uses here (2 layers, width 64, 2 heads, feed-forward 128, batch 32, lr 1e-4; CLS pooling except on
Pathfinder), with the block replacing softmax attention, as the LRA paper compares them. Block options that depend
on the length (Linformer's and the Synthesizer's `max_length`) follow the task."""

from __future__ import annotations

from typing import Any

from multiseq.config import BlockSpec, HeadConfig, ModelConfig
from multiseq.models import register_model
from multiseq.presets import lra
from multiseq.presets.zoo import ZOO_OPTIONS


def _options(block: str, task: str) -> dict[str, Any]:
    opts = {**ZOO_OPTIONS[block], "heads": lra._SMALL["heads"]}
    if "max_length" in opts:
        opts["max_length"] = lra.ADAPTER[task].max_length
    return opts


def _register() -> list[str]:
    names = []
    for block in ZOO_OPTIONS:
        for task in lra.LRA_TASKS:
            name = f"{block}_lra_{task}"
            # A CLS token at position 0 of a block-recurrent stack would only see the first block: mean pool there.
            pool = "mean" if task in ("pathfinder", "pathx") or block == "block_recurrent" else "cls"
            head = HeadConfig(kind="dual" if task == "retrieval" else "linear", pool=pool)
            spec = BlockSpec(block, _options(block, task))

            def preset(name: str = name, task: str = task, spec: BlockSpec = spec, head: HeadConfig = head) -> ModelConfig:
                return ModelConfig(
                    name=name, adapter=lra.ADAPTER[task], blocks=(spec,), num_classes=lra.CLASSES[task],
                    depth=lra._SMALL["depth"], width=lra._SMALL["width"], dropout=lra._SMALL["dropout"],
                    ffn_mult=lra._SMALL["ffn_mult"], positional="learned", head=head,
                )

            register_model(preset, name=name)
            lra._RECIPES[name] = dict(batch_size=lra._SMALL["batch_size"], lr=lra._SMALL["lr"],
                                      weight_decay=lra._SMALL["weight_decay"], steps=lra._SMALL_STEPS[task],
                                      warmup_steps=None)
            names.append(name)
    return names


REGISTERED = _register()
