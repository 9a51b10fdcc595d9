"""Atomic, permission-controlled file writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the
    new one, never a torn one; the file has ``mode`` from its first byte."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def check_trusted_file(path, what: str, private: bool = False) -> None:
    """Refuse a file that someone else could have written, like ssh does: owned by
    another user (root is fine), or writable by group or others (with ``private``:
    any access by group or others).  The message says how to fix it."""
    import pwd
    import stat

    from .errors import FacelatchError

    st = os.stat(path)
    me = os.geteuid()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in (me, 0):
        try:
            user = pwd.getpwuid(me).pw_name
        except KeyError:
            user = str(me)
        raise FacelatchError(f"{what} {path} is owned by uid {st.st_uid}, not by the user facelatch runs as "
                             f"({user}) or root; anyone who owns it could replace it. Fix: chown {user} {path}")
    bad = (stat.S_IRWXG | stat.S_IRWXO) if private else (stat.S_IWGRP | stat.S_IWOTH)
    if mode & bad:
        who = "readable by others (any group or other access)" if private else "writable by group or others"
        raise FacelatchError(f"{what} {path} is {who} (mode {mode:04o}). Fix: chmod {'600' if private else 'go-w'} "
                             f"{path}")


def read_input(path, what: str) -> bytes:
    """The bytes of a file the user named, or a one-line FacelatchError saying why not
    (missing, a directory, unreadable)."""
    from .errors import FacelatchError

    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise FacelatchError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise FacelatchError(f"{what} {path} is a directory, not a file") from None
    except OSError as e:
        raise FacelatchError(f"cannot read {what} {path}: {e.strerror or e}") from None


def read_trusted_file(path: Path, what: str, missing: str) -> bytes:
    """The bytes of a file only its owner can have written (``check_trusted_file``);
    a missing file raises ``missing``, any other failure one line naming ``what``."""
    from .errors import FacelatchError

    try:
        check_trusted_file(path, what)
        return path.read_bytes()
    except FileNotFoundError:
        raise FacelatchError(missing) from None
    except OSError as e:
        raise FacelatchError(f"cannot read {what} {path}: {e.strerror}") from None

