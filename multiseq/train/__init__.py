"""Training and evaluation: a handful of functions, not a Trainer class.

    from multiseq.train import fit, evaluate, TrainConfig
    result = fit("local_bytes_tiny", train_ds, val_ds, config=TrainConfig(steps=200, batch_size=32), out="runs/x")
    print(evaluate(result.model, test_ds)["accuracy"])

`config` (TrainConfig, FitResult), `data` (data order, micro-batches, collation, model for a dataset),
`distributed` (torchrun process group, RNG states), `rundir` (run directory, checkpoints, resume), `loop` (`fit`),
`evaluate` (`evaluate`, `predict`).
"""

from multiseq.tasks.memory import InMemoryDataset
from multiseq.train.config import FitResult, TrainConfig
from multiseq.train.data import Collate, class_names, model_for_data, stream_indices
from multiseq.train.evaluate import evaluate, predict
from multiseq.train.loop import fit, lr_factor, param_groups

__all__ = [
    "Collate",
    "FitResult",
    "InMemoryDataset",
    "TrainConfig",
    "class_names",
    "evaluate",
    "fit",
    "lr_factor",
    "model_for_data",
    "param_groups",
    "predict",
    "stream_indices",
]
