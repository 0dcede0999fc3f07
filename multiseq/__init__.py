"""multiseq: long-sequence models across text, rendered text, pixels and images.

    import multiseq
    model = multiseq.create_model("local_bytes_tiny", num_classes=2)
    logits = model(*model.encode(["a review", "another one"]))
"""

from multiseq.config import AdapterConfig, BlockSpec, HeadConfig, ModelConfig
from multiseq.models import create_model, get_model_config, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "AdapterConfig",
    "BlockSpec",
    "HeadConfig",
    "ModelConfig",
    "__version__",
    "create_model",
    "get_model_config",
    "list_models",
    "register_model",
]
