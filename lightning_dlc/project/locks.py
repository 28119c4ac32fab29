"""Output locks: one process at a time writes a video's outputs.

Every writer of the files beside a video (analysis, tracking, stitching, labeled videos, features)
holds :func:`output_lock` on ``<prefix>.lock`` (:func:`lock_path`, ``prefix`` = ``<folder>/<video
stem><scorer>``) while it writes, so two analyses of one video (a job array resubmitted while the
first still runs, two users on one folder) never mix or remove each other's results.

The lock is the operating system's: ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows. It goes
with the process: a run killed with ``kill -9`` (or a machine that stops) leaves no stale lock, the
next run takes it at once. While held, the file says who holds it (JSON: ``pid``, ``host``,
``started``, ``command``), so a second process can say whose it is (:class:`OutputLocked`).

On POSIX the holder removes the file before it lets go, and a process that locked a file that is no
longer the one at the path (removed or replaced meanwhile) lets go and tries again: a removed lock file
never lets two processes hold "the same" lock on different files. On Windows the file stays.

Within one process the lock is re-entrant (tracking run right after analysis in the same process
takes it again freely). Threads of one process share it: it guards against other processes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lightning_dlc.project.errors import ProjectError

log = logging.getLogger(__name__)

__all__ = ["LockHolder", "OutputLock", "OutputLocked", "lock_holder", "lock_path", "output_lock"]

LOCK_SUFFIX = ".lock"
_WINDOWS = sys.platform == "win32"
_WINDOWS_OFFSET = 1 << 30  # Windows locks byte ranges: lock one far past the holder's note, which stays readable
_POLL = 0.2  # seconds between tries while waiting

_held: dict[str, list] = {}  # resolved path -> [OutputLock, depth]: this process' locks (re-entrant)
_held_guard = threading.Lock()


def lock_path(prefix: str | Path) -> Path:
    """``<prefix>.lock``: the lock of a video's outputs (``prefix`` = ``<folder>/<video stem><scorer>``)."""
    return Path(f"{prefix}{LOCK_SUFFIX}")


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as its file says (fields None when it could not be read)."""

    pid: int | None = None
    host: str | None = None
    started: float | None = None
    command: str | None = None

    def describe(self) -> str:
        if self.pid is None:
            return "another process (it has not written its name yet)"
        since = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(self.started)) if self.started else ""
        command = f" ({self.command})" if self.command else ""
        return f"pid {self.pid} on host {self.host}{since}{command}"


class OutputLocked(ProjectError):
    """Another process holds the lock of these outputs. ``holder``: who (pid, host, start, command)."""

    def __init__(self, path: str | Path, holder: LockHolder):
        self.holder = holder
        super().__init__(path, f"locked by {holder.describe()}: another process is writing these outputs; "
                               "wait for it (wait_for_lock=true) or run again when it is done")


def _read_holder(path: Path) -> LockHolder:
    try:
        text = path.read_text(errors="replace").strip()
        data = json.loads(text) if text else {}
        return LockHolder(pid=int(data["pid"]), host=str(data.get("host")), started=data.get("started"),
                          command=data.get("command"))
    except (OSError, ValueError, KeyError, TypeError):
        return LockHolder()


def lock_holder(path: str | Path, settle: float = 0.5) -> LockHolder:
    """Who holds the lock at ``path`` as its file says; a holder that has just taken it gets up to ``settle``
    seconds to write its name."""
    path = Path(path)
    deadline = time.monotonic() + settle
    while True:
        holder = _read_holder(path)
        if holder.pid is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(0.05)


def _command() -> str:
    command = " ".join(sys.argv) if sys.argv and sys.argv[0] else sys.executable
    return command if len(command) <= 300 else command[:297] + "..."


def _try_lock(fd: int) -> bool:
    if _WINDOWS:
        import msvcrt

        os.lseek(fd, _WINDOWS_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        import errno

        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _unlock(fd: int) -> None:
    if _WINDOWS:
        import msvcrt

        os.lseek(fd, _WINDOWS_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def _same_file(fd: int, path: Path) -> bool:
    """The locked file is still the one at ``path`` (not removed or replaced by its last holder)."""
    if _WINDOWS:
        return True
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class OutputLock:
    """A held output lock (from :func:`output_lock`): ``path`` and this process' ``holder`` record."""

    def __init__(self, path: Path, fd: int, holder: LockHolder):
        self.path = path
        self._fd = fd
        self.holder = holder

    def release(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        try:
            if not _WINDOWS:
                # remove while still holding it: whoever locks the old file next sees it is gone and retries
                with contextlib.suppress(OSError):
                    if _same_file(fd, self.path):
                        self.path.unlink()
            else:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            with contextlib.suppress(OSError):
                _unlock(fd)
        finally:
            os.close(fd)


def _acquire(path: Path, wait: bool, timeout: float | None) -> OutputLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    start = time.monotonic()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            locked = _try_lock(fd)
            if locked and _same_file(fd, path):
                holder = LockHolder(pid=os.getpid(), host=socket.gethostname(), started=time.time(),
                                    command=_command())
                note = json.dumps({"pid": holder.pid, "host": holder.host, "started": holder.started,
                                   "command": holder.command}).encode()
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, note + b"\n")
                if waited:
                    log.info("%s: lock taken after %.1f s", path, time.monotonic() - start)
                return OutputLock(path, fd, holder)
            if locked:  # the file was removed or replaced by its last holder: not the lock any more
                _unlock(fd)
                os.close(fd)
                continue
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        holder = lock_holder(path)
        if not wait:
            raise OutputLocked(path, holder)
        if timeout is not None and time.monotonic() - start >= timeout:
            raise OutputLocked(path, holder)
        if not waited:
            log.warning("%s: locked by %s; waiting for it to finish", path, holder.describe())
            waited = True
        time.sleep(_POLL)


@contextlib.contextmanager
def output_lock(path: str | Path, wait: bool = False, timeout: float | None = None) -> Iterator[OutputLock]:
    """Hold the lock file ``path`` (e.g. :func:`lock_path` of the outputs' prefix) for the block.

    Held by another process: raises :class:`OutputLocked` naming the file, the holder's pid and host
    (``wait=False``), or waits for it, logging once that it waits (``wait=True``; ``timeout`` seconds
    at most, then :class:`OutputLocked`). Re-entrant within a process.
    """
    path = Path(path)
    key = str(path.parent.resolve() / path.name)
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:
        try:
            yield entry[0]
        finally:
            with _held_guard:
                entry[1] -= 1
        return
    lock = _acquire(path, wait, timeout)
    with _held_guard:
        _held[key] = entry = [lock, 1]
    try:
        yield lock
    finally:
        with _held_guard:
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                _held.pop(key, None)
        if last:
            lock.release()
