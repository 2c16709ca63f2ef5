"""Shared code of the reproduction book: data, layers, models, training, results."""

__version__ = "0.1.0"
