"""Errors a user can act on.

Library code raises :class:`BenchError` with a one-line message naming the file or value at
fault; the CLI prints it as ``bench: error: ...`` and exits non-zero, without a traceback.
"""


class BenchError(Exception):
    """A problem with the user's input or environment, described in one line."""


class DataError(BenchError):
    """A dataset, file or split list is missing or malformed."""
