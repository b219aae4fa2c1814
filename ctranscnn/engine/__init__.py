"""Training and evaluation engine: configs, the authors' recipe, resumable (DDP) training, run outputs."""
from ctranscnn.engine.config import PROFILES, ConfigError, RunConfig, load_config

__all__ = ["PROFILES", "ConfigError", "RunConfig", "load_config"]
