"""Log output: one JSON object per line (for log shippers) or plain text (for a terminal)."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Literal

from router.observability.context import current

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; whatever else a record carries came from `extra=` and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (context := current()) is not None:
            entry["request_id"] = context.request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = current()
        return f"{line} [{context.request_id}]" if context is not None else line


def configure_logging(level: str, fmt: LogFormat) -> dict[str, object]:
    """One handler on the root logger for ours and uvicorn's (which propagate to it); returns the config for
    uvicorn's ``log_config``, which applies it again at start-up."""
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    config: dict[str, object] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"handlers": ["default"], "level": level.upper()},
    }
    logging.config.dictConfig(config)
    return config
