"""What an unlock does: log only (default), pulse a GPIO relay, or run a command.

Every actuator is fail-secure: it only ever *opens* when asked, and an error while
opening is reported (the door stays shut); nothing here opens on its own.
:class:`Actuation` runs the actuator off the frame loop, so a slow command never
starves the watchdog, and ends it (and its process group) on stop."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
import time

from .errors import FacelatchError

log = logging.getLogger("facelatch")


class LogActuator:
    name = "log"

    def unlock(self) -> dict:
        log.info("UNLOCK (log-only actuator: nothing driven)")
        return {"actuator": "log"}

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class GpioRelay:
    """Pulse a relay on a GPIO pin (gpiozero; Raspberry Pi)."""

    name = "gpio"

    def __init__(self, pin: int, active_high: bool = True, pulse_s: float = 1.0):
        self._stop = threading.Event()
        try:
            from gpiozero import OutputDevice
        except ImportError:
            raise FacelatchError("actuator 'gpio' needs gpiozero: pip install 'facelatch[pi]'") from None
        try:
            self.device = OutputDevice(pin, active_high=active_high, initial_value=False)
        except Exception as e:  # gpiozero raises many kinds: no pin factory, pin in use, ...
            raise FacelatchError(f"cannot open GPIO pin {pin}: {e}") from None
        self.pin, self.pulse_s = pin, pulse_s

    def unlock(self) -> dict:
        try:
            self.device.on()
            self._stop.wait(self.pulse_s)
        finally:
            try:
                self.device.off()
            except Exception:  # closed meanwhile (stop): close() has switched it off
                pass
        return {"actuator": "gpio", "pin": self.pin, "pulse_s": self.pulse_s}

    def cancel(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self.device.off()
        self.device.close()


class CommandActuator:
    """Run an argv list (no shell) in its own process group with a timeout; its exit
    code is logged.  On timeout or :meth:`cancel` the whole group gets SIGTERM, then
    SIGKILL after ``grace_s``."""

    name = "command"
    grace_s = 0.5

    def __init__(self, argv: list[str], timeout_s: float = 5.0):
        if not argv:
            raise FacelatchError("actuator 'command' needs a non-empty command list")
        self.argv, self.timeout_s = list(argv), timeout_s
        self.proc: subprocess.Popen | None = None
        self._cancelled = threading.Event()

    def unlock(self) -> dict:
        try:
            self.proc = p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            log.error("unlock command failed to start: %s", e)
            return {"actuator": "command", "exit_code": None, "error": str(e)}
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                _, err = p.communicate(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if self._cancelled.is_set() or time.monotonic() >= deadline:
                    why = "stopped" if self._cancelled.is_set() else "timeout"
                    self._end_group(p)
                    log.error("unlock command %s", "stopped" if why == "stopped" else
                              f"timed out after {self.timeout_s:.1f} s")
                    return {"actuator": "command", "exit_code": None, "error": why}
        if p.returncode:
            log.error("unlock command exited %d: %s", p.returncode, err.decode(errors="replace")[-200:])
        return {"actuator": "command", "exit_code": p.returncode}

    def _end_group(self, p: subprocess.Popen) -> None:
        """SIGTERM to the command's process group, SIGKILL after grace_s."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.communicate(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                continue
        try:  # the leader is gone; leave nothing of its group behind
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def cancel(self) -> None:
        """End a running command (its worker sends the signals within 0.1 s)."""
        self._cancelled.set()

    def close(self) -> None:
        self.cancel()


def make_actuator(cfg) -> LogActuator | GpioRelay | CommandActuator:
    if cfg.kind == "log":
        return LogActuator()
    if cfg.kind == "gpio":
        return GpioRelay(cfg.gpio_pin, cfg.active_high, cfg.pulse_s)
    return CommandActuator(cfg.command, cfg.command_timeout_s)


class Actuation:
    """Runs ``actuator.unlock()`` in a worker thread, one at a time, so the frame loop
    (and its watchdog ping) never waits for it.  ``start()`` is False while the
    previous unlock is still running; finished results come from ``results()``."""

    def __init__(self, actuator, stop_within_s: float = 1.5):
        self.actuator = actuator
        self.stop_within_s = stop_within_s
        self._thread: threading.Thread | None = None
        self._done: queue.Queue = queue.Queue()
        self._context: dict = {}

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, context: dict | None = None) -> bool:
        """Unlock in the worker; ``context`` (e.g. who) is carried into the result."""
        if self.busy:
            return False
        self._context = dict(context or {})
        self._thread = threading.Thread(target=self._run, name="facelatch-actuator", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            result = dict(self.actuator.unlock())
        except Exception as e:  # the lock did not open; say so
            log.exception("actuator failed")
            result = {"actuator": getattr(self.actuator, "name", "?"), "actuator_error": str(e)}
        result["seconds"] = round(time.monotonic() - t0, 3)
        self._done.put({**self._context, **result})

    def results(self) -> list[dict]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        """Cancel a running unlock and wait for it (bounded)."""
        if self.busy:
            self.actuator.cancel()
            self.wait(self.stop_within_s)
