"""Real-format dataset loaders, splits, preprocessing and the decode cache.

Names are imported lazily, so reading metadata (phantoms, `data check`) never waits for torch.
"""
from importlib import import_module

_WHERE = {
    "DataError": "errors", "LabelledImages": "records", "LeakageWarning": "splits", "leakage_report": "splits",
    "load_splits": "splits", "save_split_files": "splits", "PreprocessConfig": "transforms",
    "ImageDataset": "dataset", "build_loader": "dataset",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
