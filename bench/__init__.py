"""bench: an ensemble/AutoML benchmarking toolkit for music-genre classification."""

__version__ = "0.1.0"
