"""Secrets out of everything bench prints, logs or records.

A database or tracking URL can carry a password (``postgresql://user:pw@host/db``,
``http://user:pw@host``, ``...?password=pw``). Every string bench shows a person or writes to
MLflow passes through :func:`mask` first: the CLI's errors, every log record (via
:func:`mask_log_records`), the tracker's tags and params, ``bench.command``.

Example::

    >>> mask("postgresql://bench:s3cret@db:5432/optuna")
    'postgresql://bench:***@db:5432/optuna'
    >>> mask("sqlite:///x.db?password=s3cret&timeout=5")
    'sqlite:///x.db?password=***&timeout=5'

A ``:`` that ends a ``password=`` value before a space or the end is the message's, not the
password's; a ``:`` inside a URL's userinfo is the password's::

    >>> mask("storage sqlite:///opt.db?password=s3cret: cannot open")
    'storage sqlite:///opt.db?password=***: cannot open'
    >>> mask("sqlite:///x.db?password=s3:cr:et&timeout=5")
    'sqlite:///x.db?password=***&timeout=5'
    >>> mask("cannot reach postgresql://bench:s3:cr:et@db:5432/optuna: refused")
    'cannot reach postgresql://bench:***@db:5432/optuna: refused'
"""

from __future__ import annotations

import logging
import re

HIDDEN = "***"

_USERINFO = re.compile(
    # scheme://user:password@  (the password runs to the last '@' before the host ends)
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#\s@]*:)(?P<secret>[^\s?#]*)@"
    r"(?=[^\s/?#@]*(?:[/?#\s'\"]|$))"
)
_KEYWORD = re.compile(
    r"(?i)(?P<head>\b(?:password|passwd|pwd|secret|token|access_token|api_key|apikey)=)"
    # the value runs to the next separator; a ':' just before a space or the end is left out
    r"(?P<secret>[^&;\s#'\"]+?)(?=:?(?:[\s'\"]|$)|[&;#])"
)


def mask(text: str) -> str:
    """``text`` with every URL password and ``password=``-style value replaced by ``***``."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}{HIDDEN}@", text)
    return _KEYWORD.sub(lambda m: f"{m['head']}{HIDDEN}", text)


def mask_log_records() -> None:
    """Mask every log record of this process as it is made, whichever handler shows it.

    A record factory rather than a handler filter: tqdm's logging redirect swaps the handlers
    while a progress bar is up, and a logger's own filters miss records of its children.
    """
    make = logging.getLogRecordFactory()
    if getattr(make, "bench_masks", False):
        return

    def masked_record(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: logging reports it when it emits
            return record
        if mask(message) != message:
            record.msg, record.args = mask(message), None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = mask(text.rstrip("\n"))
            record.exc_info = None
        return record

    masked_record.bench_masks = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)
