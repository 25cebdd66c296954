"""Optuna storages shared by the sweeper and its trials (possibly in other processes)."""

from __future__ import annotations

from pathlib import Path

import optuna

SQLITE_PREFIX = "sqlite:///"
# Seconds a process waits for another one's SQLite write lock (parallel trials report at once).
SQLITE_LOCK_TIMEOUT_S = 60


def default_storage_url(sweep_dir: str | Path) -> str:
    """``sqlite:///<sweep_dir>/optuna.db`` with an absolute path."""
    return f"{SQLITE_PREFIX}{Path(sweep_dir).resolve() / 'optuna.db'}"


def absolute_storage_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute, so trials that run elsewhere (another
    working directory, a cluster node) open the same file."""
    if not url.startswith(SQLITE_PREFIX) or url.startswith(SQLITE_PREFIX + "/"):
        return url
    return f"{SQLITE_PREFIX}{Path(url[len(SQLITE_PREFIX) :]).resolve()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``; SQLite files get a lock timeout and their folder."""
    if url.startswith(SQLITE_PREFIX):
        Path(url[len(SQLITE_PREFIX) :]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT_S}}
        )
    return optuna.storages.get_storage(url)
