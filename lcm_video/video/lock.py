"""One writer per output: an advisory lock (``flock``) beside the output, taken for the whole render, so two runs on
the same output (or batch ``--out``) refuse each other in one line instead of racing, and so temporary files left by
a run that died (``kill -9``, power loss) can be recognised as stale and removed: whoever holds the lock is the only
live writer. The kernel drops the lock when its process dies, so a dead run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from pathlib import Path

from ..errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; renders are not guarded there
    fcntl = None


class OutputLock:
    """``with OutputLock(path, what):`` holds ``.NAME.lock`` beside output file ``path`` (for a folder,
    ``path/.lock``), else a UserError naming the process that holds it. The lock file is removed on release."""

    def __init__(self, path: str | os.PathLike, what: str = "output"):
        self.path = Path(path).resolve()
        folder = what == "folder"
        self.lock = self.path / ".lock" if folder else self.path.parent / f".{self.path.name}.lock"
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        if fcntl is None:
            return self
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise UserError(
                    f"another lcm-video run (pid {holder}) is writing the {self.what} {str(self.path)!r}; wait for it "
                    "to finish or choose another path"
                ) from None
            # The holder before us may have removed the file after we opened it: then our lock is on a dead inode.
            try:
                same = os.stat(self.lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.lock.unlink()
        os.close(self._fd)
        self._fd = None


def remove_stale_partials(path: Path) -> int:
    """Delete temporary files a dead run left for output ``path`` (``.NAME.*.partial`` beside it, as ``VideoWriter``
    names them: ``writer.partial_prefix``); call only while holding its ``OutputLock``. Returns how many were
    removed."""
    n = 0
    from .writer import partial_prefix

    for stale in path.resolve().parent.glob(glob.escape(partial_prefix(path)) + "*.partial"):
        with contextlib.suppress(FileNotFoundError):
            if stale.is_dir():  # a PNG sequence's frames
                shutil.rmtree(stale)
            else:
                stale.unlink()
            n += 1
    return n
