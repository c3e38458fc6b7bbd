"""varreason: variational reasoning for language models as a reproducible pipeline."""

__version__ = "0.1.0"
