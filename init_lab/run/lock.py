"""One writer per run directory: an exclusive OS lock that dies with its holder (DESIGN §13).

Every command that writes a run directory — a sweep, a resume or extension, a report writing into
``RUN/report/`` — holds :class:`RunLock` on ``RUN/.lock`` while it writes. The lock is ``flock(2)``:
the kernel releases it when the holder exits in any way (``kill -9`` included), so there is never a
stale lock to clean up. A second writer is refused at once with :class:`RunLockedError`, naming the
holder (pid, host, command, since when: the holder writes them into the lock file) and what to do.
Readers (``initlab report --no-files``, ``load_run``, ``--dry-run``) take no lock and never wait: every
file is written atomically (``store``), so they read whole files of the run as it stands.

The holder deletes the lock file as it releases it, so a finished run directory looks as before. That
is safe against a process that opened the file just before: whoever locks a file checks that the path
still names that same file, and starts over if not (the file it locked was deleted meanwhile).

File systems without working locks: on NFS, Linux maps ``flock`` to the server's lock manager; without
one (lockd not running) ``flock`` fails with ENOLCK, which is detected here and refused with a message
(``INITLAB_NO_LOCK=1`` runs without the lock, at the user's risk). An NFS mount with ``nolock`` or
``local_lock=flock`` cannot be detected: locks then work between processes of one machine only, so two
machines can write one run directory at the same time.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from init_lab.catalog import defaults
from init_lab.catalog.errors import RunDirError, RunLockedError

try:
    import fcntl
except ImportError:  # not a POSIX system: no flock
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
# flock errors that mean "this file system cannot lock", not "someone else holds it"
NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_FILE


class RunLock:
    """The exclusive lock of one run directory, as a context manager::

        with RunLock(run_dir, "initlab sweep --resume latest"):
            ...  # the only writer of run_dir

    ``note`` says, after acquiring, if the lock is not held for a reason the user chose
    (``INITLAB_NO_LOCK``), for the caller to show.
    """

    def __init__(self, run_dir: str | Path, command: str | list[str] | None = None):
        self.root = Path(run_dir)
        self.path = lock_path(self.root)
        self.command = shlex.join(command) if isinstance(command, list) else (command or shlex.join(sys.argv))
        self.note: str | None = None
        self._fd: int | None = None

    # --- acquiring and releasing --------------------------------------------------------

    def acquire(self) -> RunLock:
        if os.environ.get(defaults.NO_LOCK_ENV) == "1" or fcntl is None:
            why = f"{defaults.NO_LOCK_ENV}=1" if fcntl is not None else "this system has no flock"
            self.note = f"writing {self.root} without its lock ({why}): make sure no other process writes it"
            return self
        for _ in range(100):  # starting over only when the file was deleted under us: a handful of times at most
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._refusal() from None
                if exc.errno in NO_LOCKS:
                    raise self._no_locks(exc) from None
                raise RunDirError(f"cannot lock {self.path}: {exc.strerror or exc}.") from None
            if self._still_ours(fd):
                self._fd = fd
                self._write_holder(fd)
                return self
            os.close(fd)  # the holder before us deleted the file as we locked it: lock the current one
        raise RunDirError(f"cannot lock {self.path}: it keeps being replaced.")

    def release(self) -> None:
        """Delete the lock file, then unlock (in this order: see the module docstring)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only or vanished directory: the kernel's unlock below is what matters
        os.close(fd)  # closing releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self if self.held else self.acquire()  # acquired already: the with-block only releases it

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- helpers ------------------------------------------------------------------------

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot write to {self.root} (its lock file: {exc.strerror or exc}).") from None

    def _still_ours(self, fd: int) -> bool:
        try:
            here, there = os.fstat(fd), os.stat(self.path)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def _write_holder(self, fd: int) -> None:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "since": datetime.now(UTC).astimezone().isoformat(timespec="seconds"), "since_epoch": time.time()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        except OSError:
            pass  # the lock holds without it; a refused writer is then told less about who holds it

    def _refusal(self) -> RunLockedError:
        holder = read_holder(self.root)
        return RunLockedError(
            f"{self.root} is being written by another process ({describe_holder(holder)}). One writer at a time: "
            "wait for it to finish, or stop it, then run this again. Reading it meanwhile is fine "
            f"(initlab report {self.root} --no-files, init_lab.load_run(...)).", holder)

    def _no_locks(self, exc: OSError) -> RunDirError:
        return RunDirError(
            f"cannot lock {self.path} ({exc.strerror or exc}): its file system has no working locks (NFS without "
            "its lock manager, lockd?), so nothing would stop two processes writing this run at once. Use a run "
            f"directory on a local disk (--out), enable locking on the mount, or set {defaults.NO_LOCK_ENV}=1 to "
            "write without the lock (and never start two writers on one run)."
        )


def read_holder(run_dir: str | Path) -> dict[str, Any]:
    """What the current (or last, if it was killed) holder wrote into the lock file; {} if nothing."""
    try:
        data = json.loads(lock_path(Path(run_dir)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """'pid 123 on host h, since 2026-… (5 min ago): initlab sweep …' — as much as the holder wrote."""
    if not holder.get("pid"):
        return "it has not said who it is yet: it may be starting"
    host, here = holder.get("host"), socket.gethostname()
    parts = [f"pid {holder['pid']}" + (f" on host {host}" if host else "")]
    if host and host != here:
        parts[0] += f" (not this machine, {here}: stop it there)"
    elif not _alive(holder["pid"]):
        parts[0] += " (that pid has exited: a process it started still holds the lock)"
    if holder.get("since"):
        ago = _ago(holder.get("since_epoch"))
        parts.append(f"since {holder['since']}" + (f" ({ago} ago)" if ago else ""))
    if holder.get("command"):
        parts.append(f"running `{holder['command']}`")
    return ", ".join(parts)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, TypeError):
        return True  # exists but not ours (EPERM), or unreadable: do not claim it exited
    return True


def _ago(since: Any) -> str:
    try:
        seconds = max(0, int(time.time() - float(since)))
    except (TypeError, ValueError):
        return ""
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"
