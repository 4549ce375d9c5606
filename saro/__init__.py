"""saro: safety-policy reasoning alignment (SaRO, arXiv 2504.09420) on Hugging Face transformers and TRL."""

from saro.errors import ConfigError, DataError, SaroError, TeacherError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "SaroError", "TeacherError", "__version__"]
