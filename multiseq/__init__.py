"""multiseq: long-sequence models across text, rendered text, pixels and images.

    import multiseq
    model = multiseq.create_model("local_bytes_tiny", num_classes=2)
    logits = model(*model.encode(["a review", "another one"]))
"""

from multiseq.config import AdapterConfig, BlockSpec, HeadConfig, ModelConfig, StemConfig
from multiseq.models import create_model, get_model_config, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "AdapterConfig",
    "ImageClassifier",
    "TextClassifier",
    "BlockSpec",
    "HeadConfig",
    "ModelConfig",
    "StemConfig",
    "__version__",
    "create_model",
    "get_model_config",
    "list_models",
    "register_model",
]

# The scikit-learn style classifiers load on first use (they import scikit-learn and the training loop).
_LAZY = {"TextClassifier": "multiseq.api", "ImageClassifier": "multiseq.api"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'multiseq' has no attribute {name!r}")
