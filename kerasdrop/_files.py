"""Writing files so that a reader never sees half of one, even if the writer is killed."""

from __future__ import annotations

import os
import pathlib
import threading


def atomic_write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    """Writes `text` to a temporary file beside `path`, then renames it over `path`.

    The temporary file is created like any other (umask permissions, unlike mkstemp's 0600), so
    TF Serving running as another user can still read what replaces it.
    """
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
