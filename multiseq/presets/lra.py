"""Long Range Arena presets: `{family}_lra_{task}` for the six LRA tasks, with each paper's training recipe.

    create_model("s4d_lra_listops")            # the model
    recipe("s4d_lra_listops")                  # {"batch_size": 50, "lr": 0.01, "weight_decay": 0.05, "epochs": 40, ...}
    multiseq train --task listops --model s4d_lra_listops      # the CLI takes the recipe as its defaults

Sources of the set-ups (depth, width, pooling, batch, lr, weight decay, epochs), as published:
* S4 family (`s4`, `s4d`, `dss`, `gss`): the S4 paper's LRA table of hyper-parameters (Gu et al. 2022,
  appendix), also used by S4D and DSS. SSM parameters (A, B, dt) train with their own lr (`ssm_lr`, no weight
  decay) through the block's `lr` option. No feed-forward (the S4 layer has its own output projection); mean pool.
* Mega and Mega-chunk: the Mega paper's LRA hyper-parameter table (Ma et al. 2023, appendix): depth, model width,
  `hdim` = 2 x width, shared dimension `zdim`, EMA dimension 16, Laplace attention on the image-like tasks.
  Mega-chunk uses chunks of 128 on the 1K-4K tasks.
* Transformer (`attention`), Transformer-LS (`ls`), ContextPool (`contextpool_local`): the common PyTorch LRA
  set-up these papers train in (2 layers, width 64, 2 heads, feed-forward 128, batch 32, lr 1e-4, CLS pooling
  except Pathfinder), with each method's attention replacing the softmax one.
Deviations: the S4 paper's BatchNorm runs are built with LayerNorm here (the backbone has layer/RMS norms);
lengths follow the LRA pipelines of `specs/lra-tasks.md` (ListOps 2,000, Text 4,096, Retrieval 4,000 per document,
Image / Pathfinder 1,024 pixels, Path-X 16,384). Values are stated as recalled from the papers' tables: check them
against the paper before quoting a reproduction.

Presets are registered only for block families present in `list_blocks()`; `LRA_FAMILIES` lists the intended ones.
"""

from __future__ import annotations

from typing import Any

from multiseq.blocks.registry import list_blocks
from multiseq.config import AdapterConfig, BlockSpec, HeadConfig, ModelConfig
from multiseq.models import register_model

LRA_TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")

# family prefix -> block name (`contextpool_local` wraps `local` attention)
LRA_FAMILIES: dict[str, str] = {
    "attention": "attention",
    "s4": "s4",
    "s4d": "s4d",
    "dss": "dss",
    "gss": "gss",
    "mega": "mega",
    "mega_chunk": "mega_chunk",
    "ls": "ls",
    "contextpool_local": "contextpool+local",
}

ADAPTER: dict[str, AdapterConfig] = {
    "listops": AdapterConfig("listops", max_length=2000),
    "text": AdapterConfig("bytes", max_length=4096),
    "retrieval": AdapterConfig("bytes", max_length=4000),
    "image": AdapterConfig("pixels", max_length=1024, options={"image_size": [32, 32]}),
    "pathfinder": AdapterConfig("pixels", max_length=1024, options={"image_size": [32, 32]}),
    "pathx": AdapterConfig("pixels", max_length=16384, options={"image_size": [128, 128]}),
}
CLASSES = {"listops": 10, "text": 2, "retrieval": 2, "image": 10, "pathfinder": 2, "pathx": 2}

# S4 paper, LRA: depth, width, dropout, lr, weight decay, batch, epochs, SSM lr, dt range.
_S4 = {
    "listops": dict(depth=8, width=128, dropout=0.0, lr=0.01, weight_decay=0.05, batch_size=50, epochs=40, ssm_lr=0.001, dt=(0.001, 0.1)),
    "text": dict(depth=6, width=256, dropout=0.0, lr=0.01, weight_decay=0.05, batch_size=16, epochs=32, ssm_lr=0.001, dt=(0.001, 0.1)),
    "retrieval": dict(depth=6, width=256, dropout=0.0, lr=0.01, weight_decay=0.05, batch_size=64, epochs=20, ssm_lr=0.001, dt=(0.001, 0.1)),
    "image": dict(depth=6, width=512, dropout=0.1, lr=0.01, weight_decay=0.05, batch_size=50, epochs=200, ssm_lr=0.001, dt=(0.001, 0.1)),
    "pathfinder": dict(depth=6, width=256, dropout=0.0, lr=0.004, weight_decay=0.05, batch_size=64, epochs=200, ssm_lr=0.001, dt=(0.001, 0.1)),
    "pathx": dict(depth=6, width=256, dropout=0.0, lr=0.0005, weight_decay=0.05, batch_size=32, epochs=50, ssm_lr=0.0005, dt=(0.0001, 0.01)),
}

# Mega paper, LRA: depth, width, zdim, attention function, dropout, lr, weight decay, batch, epochs.
_MEGA = {
    "listops": dict(depth=6, width=80, zdim=64, fn="softmax", dropout=0.1, lr=0.001, weight_decay=0.01, batch_size=64, epochs=60),
    "text": dict(depth=4, width=128, zdim=64, fn="softmax", dropout=0.1, lr=0.004, weight_decay=0.01, batch_size=50, epochs=50),
    "retrieval": dict(depth=6, width=128, zdim=64, fn="softmax", dropout=0.1, lr=0.003, weight_decay=0.04, batch_size=64, epochs=40),
    "image": dict(depth=8, width=160, zdim=96, fn="laplace", dropout=0.0, lr=0.01, weight_decay=0.02, batch_size=50, epochs=200),
    "pathfinder": dict(depth=6, width=128, zdim=64, fn="laplace", dropout=0.1, lr=0.01, weight_decay=0.01, batch_size=128, epochs=200),
    "pathx": dict(depth=4, width=64, zdim=32, fn="laplace", dropout=0.0, lr=0.01, weight_decay=0.01, batch_size=128, epochs=100),
}

# The common PyTorch LRA set-up (Transformer baseline, Transformer-LS, ContextPool): steps rather than epochs.
_SMALL = dict(depth=2, width=64, heads=2, ffn_mult=2.0, dropout=0.1, lr=1e-4, weight_decay=0.0, batch_size=32)
_SMALL_STEPS = {"listops": 5000, "text": 20000, "retrieval": 30000, "image": 35000, "pathfinder": 62400, "pathx": 62400}

_RECIPES: dict[str, dict[str, Any]] = {}


def recipe(name: str) -> dict[str, Any] | None:
    """Training recipe of an LRA preset (`batch_size`, `lr`, `weight_decay`, `epochs` or `steps`,
    `warmup_steps`), or None for other presets. `fit`/`multiseq train` take these as defaults."""
    return dict(_RECIPES[name]) if name in _RECIPES else None


def _block(family: str, task: str, width: int) -> tuple[BlockSpec, dict[str, Any], dict[str, Any]]:
    """(block spec, extra ModelConfig fields, recipe) of one family on one task."""
    block = LRA_FAMILIES[family]
    pool = "mean" if task in ("pathfinder", "pathx") else "cls"
    if family in ("s4", "s4d", "dss", "gss"):
        h = _S4[task]
        opts = {"d_state": 64, "lr": h["ssm_lr"], "dt_min": h["dt"][0], "dt_max": h["dt"][1], "bidirectional": True}
        fields = dict(positional="none", ffn_mult=0.0, head=HeadConfig(pool="mean"))
        rec = dict(batch_size=h["batch_size"], lr=h["lr"], weight_decay=h["weight_decay"], epochs=h["epochs"])
        return BlockSpec(block, opts), fields, rec
    if family in ("mega", "mega_chunk"):
        h = _MEGA[task]
        opts = {"ndim": 16, "zdim": h["zdim"], "hdim": 2 * width, "attention_fn": h["fn"], "ffn_mult": 2.0,
                "rel_pos": "simple"}
        if family == "mega_chunk":
            opts["chunk"] = 128
        fields = dict(positional="none", head=HeadConfig(pool="mean"))
        rec = dict(batch_size=h["batch_size"], lr=h["lr"], weight_decay=h["weight_decay"], epochs=h["epochs"])
        return BlockSpec(block, opts), fields, rec
    heads = _SMALL["heads"]
    if family == "attention":
        opts: dict[str, Any] = {"heads": heads}
    elif family == "ls":
        opts = {"heads": heads, "window": 64, "rank": 32}
        if pool == "cls":
            opts["cls"] = True  # the LS block keeps its CLS token global
    else:  # contextpool around local attention
        opts = {"radius": 8, "sigma_max": 4.0, "inner": {"heads": heads, "window": 128}}
    fields = dict(positional="learned", ffn_mult=_SMALL["ffn_mult"], head=HeadConfig(pool=pool))
    rec = dict(batch_size=_SMALL["batch_size"], lr=_SMALL["lr"], weight_decay=_SMALL["weight_decay"],
               steps=_SMALL_STEPS[task])
    return BlockSpec(block, opts), fields, rec


def _dims(family: str, task: str) -> dict[str, Any]:
    if family in ("s4", "s4d", "dss", "gss"):
        h = _S4[task]
    elif family in ("mega", "mega_chunk"):
        h = _MEGA[task]
    else:
        h = _SMALL
    return {"depth": h["depth"], "width": h["width"], "dropout": h["dropout"]}


def _register() -> list[str]:
    available = set(list_blocks())
    names = []
    for family, block in LRA_FAMILIES.items():
        if any(part not in available for part in block.split("+")):
            continue  # the block is not (yet) implemented: no preset rather than a broken one
        for task in LRA_TASKS:
            name = f"{family}_lra_{task}"
            dims = _dims(family, task)
            spec, fields, rec = _block(family, task, dims["width"])
            if task == "retrieval":
                fields["head"] = HeadConfig(kind="dual", pool=fields["head"].pool)
            rec.setdefault("warmup_steps", None)
            _RECIPES[name] = rec

            def preset(name: str = name, task: str = task, spec: BlockSpec = spec, fields: dict = fields,
                       dims: dict = dims) -> ModelConfig:
                return ModelConfig(name=name, adapter=ADAPTER[task], blocks=(spec,), num_classes=CLASSES[task],
                                   **dims, **fields)

            register_model(preset, name=name)
            names.append(name)
    return names


REGISTERED = _register()
