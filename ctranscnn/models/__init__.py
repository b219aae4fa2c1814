"""Registered models. Importing this package registers them all (see ctranscnn.registry)."""
from ctranscnn.models import ctranscnn  # noqa: F401
from ctranscnn.models import baselines  # noqa: F401
