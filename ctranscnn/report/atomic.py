"""Deprecated location of the atomic writers: they live in `ctranscnn.io` (kept until every importer moved)."""
from ctranscnn.io import atomic_path, atomic_write_text  # noqa: F401
