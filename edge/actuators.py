"""What an unlock does: log only (default), pulse a GPIO relay, or run a command.

Every actuator is fail-secure: it only ever *opens* when asked, and an error while
opening is reported (the door stays shut); nothing here opens on its own."""

from __future__ import annotations

import logging
import subprocess
import time

from .errors import FacelatchError

log = logging.getLogger("facelatch")


class LogActuator:
    name = "log"

    def unlock(self) -> dict:
        log.info("UNLOCK (log-only actuator: nothing driven)")
        return {"actuator": "log"}

    def close(self) -> None:
        pass


class GpioRelay:
    """Pulse a relay on a GPIO pin (gpiozero; Raspberry Pi)."""

    name = "gpio"

    def __init__(self, pin: int, active_high: bool = True, pulse_s: float = 1.0):
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
            time.sleep(self.pulse_s)
        finally:
            self.device.off()
        return {"actuator": "gpio", "pin": self.pin, "pulse_s": self.pulse_s}

    def close(self) -> None:
        self.device.off()
        self.device.close()


class CommandActuator:
    """Run an argv list (no shell) with a timeout; its exit code is logged."""

    name = "command"

    def __init__(self, argv: list[str], timeout_s: float = 5.0):
        if not argv:
            raise FacelatchError("actuator 'command' needs a non-empty command list")
        self.argv, self.timeout_s = list(argv), timeout_s

    def unlock(self) -> dict:
        try:
            p = subprocess.run(self.argv, timeout=self.timeout_s, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if p.returncode:
                log.error("unlock command exited %d: %s", p.returncode, p.stderr.decode(errors="replace")[-200:])
            return {"actuator": "command", "exit_code": p.returncode}
        except subprocess.TimeoutExpired:
            log.error("unlock command timed out after %.1f s", self.timeout_s)
            return {"actuator": "command", "exit_code": None, "error": "timeout"}
        except OSError as e:
            log.error("unlock command failed to start: %s", e)
            return {"actuator": "command", "exit_code": None, "error": str(e)}

    def close(self) -> None:
        pass


def make_actuator(cfg) -> LogActuator | GpioRelay | CommandActuator:
    if cfg.kind == "log":
        return LogActuator()
    if cfg.kind == "gpio":
        return GpioRelay(cfg.gpio_pin, cfg.active_high, cfg.pulse_s)
    return CommandActuator(cfg.command, cfg.command_timeout_s)
