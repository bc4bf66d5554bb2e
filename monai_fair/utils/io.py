# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Atomic file writes: a reader (or a killed run) never sees a half-written file.

Every output written while other processes may read it (reports, cards, predictions, checkpoints, run records)
goes through :func:`atomic_path`: the content is written to a temporary file with a **unique** name in the
destination folder (process id and a random token, so concurrent writers of the same file never share a temporary
file), which then replaces the destination in one ``os.replace`` (atomic on POSIX and Windows within one file
system). On an error the temporary file is removed and the destination is left as it was.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; when the block exits without error it replaces ``path``.

    Example::

        with atomic_path(out / "model.pt") as tmp:
            torch.save(state, tmp)

    Args:
        path: the destination file; its folder must exist.

    Yields:
        the temporary file's path (``.<name>.<pid>.<token>.tmp`` in the same folder; hidden, so globs of the
        folder do not pick up a partial file).
    """
    dest = Path(path)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`); returns ``path`` as a ``Path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, **dump_kwargs: Any) -> Path:
    """``json.dump(obj, ..., **dump_kwargs)`` to ``path`` atomically (:func:`atomic_path`); returns the path."""
    return atomic_write_text(path, json.dumps(obj, **dump_kwargs))
