"""Errors a user can act on.

Library code raises :class:`BenchError` with a one-line message naming the file or value at
fault; the CLI prints it as ``bench: error: ...`` and exits non-zero, without a traceback.
Messages are masked (:func:`bench.redact.mask`) when the error is made, so a URL's password never
reaches the console, a log or an MLflow tag through an error.
"""

from bench.redact import mask


class BenchError(Exception):
    """A problem with the user's input or environment, described in one line."""

    def __init__(self, message: object = "") -> None:
        super().__init__(mask(str(message)))


class DataError(BenchError):
    """A dataset, file or split list is missing or malformed."""
