"""LRA presets: every intended block family has a preset per LRA task, with a recipe the CLI uses.

NOTE: `test_every_family_has_all_six_tasks` fails while a block family is not yet implemented (presets are only
registered for blocks in `list_blocks()`); it exists so that the product cannot silently miss a family.
"""

from __future__ import annotations

import multiseq
from multiseq.presets.lra import LRA_FAMILIES, LRA_TASKS, recipe
from multiseq.train import TrainConfig
from multiseq.cli.train import _recipe

EXPECTED = {"attention", "s4", "s4d", "dss", "gss", "mega", "mega_chunk", "ls", "contextpool_local"}


def test_every_family_has_all_six_tasks():
    assert set(LRA_FAMILIES) == EXPECTED
    missing = [f"{f}_lra_{t}" for f in sorted(EXPECTED) for t in LRA_TASKS if f"{f}_lra_{t}" not in multiseq.list_models()]
    assert not missing, f"LRA presets missing (block not registered?): {missing}"


def test_presets_follow_the_task_shapes_and_recipes_build_configs():
    for name in multiseq.list_models("*_lra_*"):
        cfg = multiseq.get_model_config(name)
        task = name.split("_lra_")[1]
        assert cfg.num_classes == {"listops": 10, "image": 10}.get(task, 2)
        assert (cfg.head.kind == "dual") == (task == "retrieval")
        assert cfg.adapter.max_length == {"listops": 2000, "text": 4096, "retrieval": 4000, "pathx": 16384}.get(task, 1024)
        r = recipe(name)
        assert r is not None and _recipe(name) == r
        TrainConfig(**r)  # a valid training configuration
    assert recipe("local_bytes_tiny") is None
    s4 = multiseq.get_model_config("s4d_lra_listops")
    assert (s4.depth, s4.width, s4.head.pool) == (8, 128, "mean")
    assert s4.blocks[0].options["lr"] == 0.001  # the SSM parameters' own learning rate (mark_optim)
