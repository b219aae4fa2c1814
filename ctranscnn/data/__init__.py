"""Real-format dataset loaders, splits, preprocessing and the decode cache."""
from ctranscnn.data.records import LabelledImages

__all__ = ["LabelledImages"]
