"""In-process wake-up for outbox workers: an enqueue that commits rings its engine's listeners.

A worker running in the process that enqueues (the API's embedded worker, the SQLite default)
then claims the new message at once instead of at its next poll (``worker_poll_seconds``). A
worker in another process still finds it by polling: this is a shortcut, never the only path.

``outbox.enqueue`` marks its session; the ring happens after that session's transaction commits
(a rolled-back enqueue rings nobody). Listeners are called in the committing thread, so they
must be thread-safe (a worker hands the ring to its event loop with call_soon_threadsafe).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

_MARK = "outbox_enqueued"
_lock = threading.Lock()
_listeners: weakref.WeakKeyDictionary[Engine, list[Callable[[], None]]] = (
    weakref.WeakKeyDictionary()
)


def listen(engine: Engine, callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` after each commit that enqueued on ``engine``; returns the hang-up."""
    with _lock:
        _listeners.setdefault(engine, []).append(callback)

    def hang_up() -> None:
        with _lock:
            callbacks = _listeners.get(engine, [])
            if callback in callbacks:
                callbacks.remove(callback)

    return hang_up


def mark(session: Session) -> None:
    """Note that ``session``'s transaction enqueued: its commit will ring."""
    session.info[_MARK] = True


@event.listens_for(Session, "after_commit")
def _ring(session: Session) -> None:
    if not session.info.pop(_MARK, False):
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with _lock:
        callbacks = list(_listeners.get(engine, ()))
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_MARK, None)
