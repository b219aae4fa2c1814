"""ctranscnn: a plain-PyTorch, runnable re-implementation of CTransCNN (Wu et al., KBS 2023)."""
from ctranscnn.registry import create_model, list_models, register_model

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "register_model", "__version__"]
