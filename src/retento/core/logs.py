"""Process logging: one format, the level from `RETENTO_LOG_LEVEL`, and the HTTP client's one line per request
(httpx logs each at INFO: 40,000 lines for a WhatsApp campaign) moved down to DEBUG, where Retento's own
per-message lines are. At INFO a worker logs a summary per batch instead."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PER_REQUEST = ("httpx",)  # loggers that write a line per request at INFO


class _PerRequest(logging.Filter):
    """Re-levels a per-request INFO record to DEBUG, and drops it unless DEBUG is on for its logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_FILTER = _PerRequest()


def configure(level: str = "INFO") -> None:
    """Log to stderr at `level` (the first call sets the handler and format, as `logging.basicConfig` does)."""
    logging.basicConfig(format=FORMAT)
    logging.getLogger().setLevel(level)
    for name in PER_REQUEST:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
