"""The engine client's errors: each says in one line what went wrong and what to do."""

from __future__ import annotations

from core.engine.options import ClientOptionError

__all__ = ["ClientClosed", "ClientFailed", "ClientOptionError", "StoreValueError"]


class ClientClosed(RuntimeError):
    """The client (or its store) was used after ``close()``."""


class ClientFailed(RuntimeError):
    """A background task of the client failed and was not restarted: decisions are no longer
    followed. Raised by the engine's next call (``record_batch``, ``current``); the cause is
    ``__cause__`` and ``client.last_error``."""


class StoreValueError(ValueError):
    """An append the store refused whole (an infinity): the series is left as it was."""
