"""Files the command writes: checked before any work, written atomically, cleaned up on any interruption.

The rules, the same for ``berry sample --out`` and ``berry probe --plot``:

* everything about the path is checked before anything is computed or
  written: its directory exists and is writable, the name fits the file
  system, it is not a directory, and an existing file is replaced only with
  ``--force`` (the probe's default picture, ``berry-probe.png``, is berry's
  own output and is replaced on every run);
* the file is written under a temporary name beside it (``.berry-*.partial``)
  and moved into place at the end, so the final name never holds a partial
  file; an error, Ctrl-C (SIGINT), SIGTERM or SIGHUP removes the temporary
  file;
* a path through a symbolic link writes the file the link points to; the link
  itself stays (as ``>`` in a shell does);
* an existing file keeps its permissions; a new one gets the usual
  ``0o666 & ~umask`` (not ``mkstemp``'s private ``0o600``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from berry.cli._common import CommandError, size_text

__all__ = ["Interrupted", "Target", "check_target", "write_atomically"]


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP while a file was being written (nothing was left behind)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def status(self) -> int:
        return 128 + self.signum  # what a shell reports for a process killed by the signal

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


@dataclass(frozen=True)
class Target:
    """A file to write: the path as given, the file it names (through links), and whether it exists."""

    path: str
    real: str
    exists: bool

    @property
    def through_link(self) -> bool:
        return os.path.realpath(self.path) != os.path.abspath(self.path)


def _name_limit(directory: str) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):
        return 255


def check_target(path: str, *, option: str, force: bool, replace_existing: bool = False,
                 needs_bytes: int | None = None) -> Target:
    """Check that ``path`` can be written, before anything is computed; raise :class:`CommandError` if not.

    ``replace_existing`` replaces an existing file without ``--force`` (for berry's own default
    output); ``needs_bytes`` is checked against the free space of the file's file system.
    """
    if not path:
        raise CommandError(f"{option} is empty; give a file name")
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise CommandError(f"{option} {path!r} is a directory; give a file name")
    directory, name = os.path.split(real)
    if not os.path.isdir(directory):
        given = os.path.dirname(path) or "."
        raise CommandError(f"{option} {path!r}: the directory {given!r} does not exist (berry creates no directories)")
    limit = _name_limit(directory)
    if len(os.fsencode(name)) > limit:
        raise CommandError(f"{option} {path!r}: the file name is {len(os.fsencode(name))} bytes, longer than "
                           f"the {limit} bytes this file system allows")
    exists = os.path.lexists(real)
    if exists:
        if not os.path.isfile(real):
            raise CommandError(f"{option} {path!r} exists and is not a regular file; berry writes only regular files")
        if not (force or replace_existing):
            raise CommandError(f"{path} already exists; pass --force to overwrite it")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CommandError(f"{option} {path!r}: cannot write in the directory {os.path.dirname(path) or '.'!r} "
                           "(permission denied)")
    if needs_bytes is not None:
        free = shutil.disk_usage(directory).free + (os.path.getsize(real) if exists else 0)
        if needs_bytes > free:
            raise CommandError(f"{option} {path!r} needs {size_text(needs_bytes)} and its file system has "
                               f"{size_text(free)} free")
    return Target(path, real, exists)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` (as SIGINT raises KeyboardInterrupt) while writing."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; the caller's handlers stand
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {signum: signal.signal(signum, interrupt) for signum in wanted}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(target: Target, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file beside the target, then move it onto the target.

    An error or an interruption removes the temporary file, so the target never holds a partial
    file (and an existing one is kept). Interruptions raise :class:`Interrupted`; I/O errors become
    a :class:`CommandError` with status 1.
    """
    directory = os.path.dirname(target.real)
    mode = os.stat(target.real).st_mode & 0o7777 if target.exists else _new_file_mode()
    temporary = None
    with _signals_interrupt():
        try:
            # A short fixed prefix: the target's own name may already be as long as the file system allows.
            handle, temporary = tempfile.mkstemp(prefix=".berry-", suffix=".partial", dir=directory)
            with os.fdopen(handle, "wb") as stream:
                write(stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, target.real)
            temporary = None
        except KeyboardInterrupt:
            raise Interrupted(signal.SIGINT) from None
        except OSError as error:
            reason = error.strerror or str(error)
            if error.errno in (errno.EACCES, errno.EPERM):
                reason = "permission denied"
            raise CommandError(f"cannot write {target.path}: {reason}", status=1) from None
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
