"""sd_notify over $NOTIFY_SOCKET (a few lines; no dependency)."""

from __future__ import annotations

import os
import socket


class Notifier:
    """``send("READY=1")`` etc.; does nothing when not run by systemd."""

    def __init__(self, address: str | None = None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address = None
        if address:
            self.address = "\0" + address[1:] if address.startswith("@") else address
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def send(self, *lines: str) -> None:
        if self.address is None:
            return
        try:
            self.sock.sendto("\n".join(lines).encode("utf-8", "replace"), self.address)
        except OSError:
            pass

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """One line of status (a newline would start another assignment, e.g. READY=1)."""
        self.send("STATUS=" + "".join(ch if ch.isprintable() else "?" for ch in text))

    def reloading(self) -> None:
        self.send("RELOADING=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd gave us, in seconds (None: no watchdog)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6
