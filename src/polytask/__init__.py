"""polytask: multi-task learning for NLP in PyTorch."""
__version__ = "0.1.0"

from .config import ConfigError, ExperimentConfig, load_config  # noqa: E402

__all__ = ["ConfigError", "ExperimentConfig", "load_config", "__version__"]
