"""Training and evaluation: a handful of functions, not a Trainer class.

    from multiseq.train import fit, evaluate, TrainConfig
    result = fit("local_bytes_tiny", train_ds, val_ds, config=TrainConfig(steps=200, batch_size=32), out="runs/x")
    print(evaluate(result.model, test_ds)["accuracy"])

`config` (TrainConfig, FitResult), `data` (data order, micro-batches, collation, model for a dataset),
`distributed` (torchrun process group, RNG states), `rundir` (run directory, checkpoints, resume), `lock` (one writer
per run directory), `records` (the small records the loop passes around), `steps` (the objectives and one optimiser
step), `budget` (wall-clock budget -> step count), `report` (logs), `init` (a pretrained body), `loop` (`fit`,
`pretrain`), `objectives` (self-pretraining), `evaluate` (`evaluate`, `predict`).
"""

from multiseq.tasks.memory import InMemoryDataset
from multiseq.train.config import FitResult, TrainConfig
from multiseq.train.data import Collate, class_names, model_for_data, stream_indices
from multiseq.train.evaluate import evaluate, predict
from multiseq.train.loop import fit, lr_factor, param_groups, pretrain
from multiseq.train.objectives import PretrainConfig, SelfPretraining, body_state

__all__ = [
    "Collate",
    "FitResult",
    "InMemoryDataset",
    "PretrainConfig",
    "SelfPretraining",
    "TrainConfig",
    "body_state",
    "class_names",
    "evaluate",
    "fit",
    "lr_factor",
    "model_for_data",
    "param_groups",
    "predict",
    "pretrain",
    "stream_indices",
]
