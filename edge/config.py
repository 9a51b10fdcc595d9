"""``facelatch run`` configuration: TOML, validated at start with one clear message
per problem.  Every key, its default and its meaning is in the shipped example
(``facelatch config-example``); this module is the schema."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FacelatchError
from .fileio import read_input
from .policy import PolicyConfig


@dataclass
class CameraConfig:
    source: str = "opencv"
    device: str = "0"
    width: int = 640
    height: int = 480
    fps: float = 15.0
    pace: bool = True
    loop: bool = False
    reopen_backoff_s: float = 1.0
    reopen_backoff_max_s: float = 30.0
    frozen_after_s: float = 10.0
    max_image_mp: float = 40.0  # images source: larger images are refused before decoding


@dataclass
class ModelConfig:
    encoder: str = "facelatch_sface_int8"
    models_dir: str = ""
    threads: int = 1
    fmr: float = 1e-4
    full_range_fallback: bool = False


@dataclass
class LivenessConfig:
    enabled: bool = True
    model: str = "facelatch_liveness"
    threshold: float = -1.0  # -1: the model card's default
    require_blink: bool = False  # opt-in active check: an unlock also needs a blink


@dataclass
class TemplateConfig:
    path: str = "template.json"  # relative paths are in the state directory
    key_file: str = ""  # "" -> systemd credential "template-key" if present, else unencrypted


@dataclass
class ActuatorConfig:
    kind: str = "log"
    gpio_pin: int = 17
    active_high: bool = True
    pulse_s: float = 1.0
    command: list = field(default_factory=list)
    command_timeout_s: float = 5.0


@dataclass
class AuditConfig:
    max_bytes: int = 1_000_000
    backups: int = 5
    save_snapshots: bool = False
    snapshot_max_count: int = 100
    snapshot_max_age_days: float = 7.0


@dataclass
class MqttConfig:
    enabled: bool = False
    host: str = "localhost"
    port: int = 1883
    node_id: str = "facelatch"
    discovery_prefix: str = "homeassistant"
    tls: bool = False
    ca_file: str = ""  # "" = the system's CAs
    credentials_file: str = ""  # "" -> systemd credential "mqtt-credentials" if present
    keepalive_s: float = 30.0
    queue_max: int = 100
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    remote_unlock: bool = False
    unlock_code_file: str = ""  # "" -> systemd credential "mqtt-unlock-code"
    command_ttl_s: float = 30.0  # a nonce lives this long; a command not carried out this long after it came is refused
    code_backoff_max_s: float = 900.0  # wrong signatures back off 1 s, doubling, up to this
    refused_per_minute: float = 1.0  # refused commands audited one by one per topic after a burst of 20; the rest
    # are counted (a flood at this rate cannot rotate a day of real decisions out of the audit)
    pause_unsigned: bool = False  # the pause switch obeys unsigned ON/OFF (anyone who may publish can pause)
    publish_scores: bool = False  # events carry distance and P(live), rounded to 2 digits
    publish_spoof_person: bool = False  # a spoof event names the enrolled person the photo matched


@dataclass
class SecurityConfig:
    allow_insecure: bool = False  # run below the security floor (warned at start, "insecure" in the audit)


# The security floor: settings below it are refused unless [security] allow_insecure = true.
FLOOR_K = 2
FLOOR_FMR = 1e-3
FLOOR_MIN_FACE_PX = 40.0


@dataclass
class Config:
    state_dir: str = "/var/lib/facelatch"
    camera: CameraConfig = field(default_factory=CameraConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    template: TemplateConfig = field(default_factory=TemplateConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    actuator: ActuatorConfig = field(default_factory=ActuatorConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)

    def state_path(self, p: str) -> Path:
        return Path(p) if os.path.isabs(p) else Path(self.state_dir) / p


CHOICES = {
    "camera.source": {"opencv", "picamera2", "images"},
    "actuator.kind": {"log", "gpio", "command"},
    "policy.multiple_faces": {"deny", "largest"},
}
RANGES = {  # (min, max) inclusive; None = unbounded
    "camera.width": (16, 8192), "camera.height": (16, 8192), "camera.fps": (0.1, 240),
    "camera.reopen_backoff_s": (0.01, 3600), "camera.reopen_backoff_max_s": (0.01, 86400),
    "camera.frozen_after_s": (0.1, 86400), "camera.max_image_mp": (0.1, 1000),
    "model.threads": (1, 64), "model.fmr": (1e-9, 0.5), "liveness.threshold": (-1.0, 1.0),
    "policy.k": (1, 100), "policy.n": (1, 100), "policy.min_face_px": (0, 10000),
    "policy.attempt_timeout_s": (0.1, 600), "policy.lost_after_s": (0.0, 60), "policy.track_iou": (0.0, 1.0),
    "policy.max_failed_attempts": (1, 1000), "policy.backoff_s": (30, 86400), "policy.backoff_max_s": (30, 7 * 86400),
    "policy.unlock_cooldown_s": (0, 3600), "policy.min_live_share": (0.0, 1.0),
    "policy.after_spoof_k": (0, 100),
    "actuator.gpio_pin": (0, 63), "actuator.pulse_s": (0.01, 60), "actuator.command_timeout_s": (0.1, 600),
    "audit.max_bytes": (1000, 10 ** 10), "audit.backups": (0, 100), "audit.snapshot_max_count": (0, 100000),
    "audit.snapshot_max_age_days": (0, 3650),
    "mqtt.port": (1, 65535), "mqtt.keepalive_s": (5, 3600), "mqtt.queue_max": (1, 100000),
    "mqtt.reconnect_min_s": (1, 3600), "mqtt.reconnect_max_s": (1, 86400),
    "mqtt.command_ttl_s": (2, 3600), "mqtt.code_backoff_max_s": (1, 86400), "mqtt.refused_per_minute": (0.1, 60000),
}


def _check_value(key: str, default, value, problems: list[str]):
    want = type(default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            problems.append(f"{key}: an integer of {len(str(abs(value)))} digits is out of range")
            return default
    if want is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{key}: expected a list of strings, got {value!r}")
            return default
    elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
        problems.append(f"{key}: expected {want.__name__}, got {type(value).__name__} {value!r}")
        return default
    if key in CHOICES and value not in CHOICES[key]:
        problems.append(f"{key}: must be one of {', '.join(sorted(CHOICES[key]))}, got {value!r}")
    if key in RANGES:
        lo, hi = RANGES[key]
        if not lo <= value <= hi:
            problems.append(f"{key}: {value} is out of range [{lo}, {hi}]")
    return value


def below_floor(cfg: Config) -> list[str]:
    """Every setting below the security floor, as a sentence."""
    p, out = cfg.policy, []
    if p.k < FLOOR_K:
        out.append(f"policy.k = {p.k}: fewer than {FLOOR_K} matching frames open the door")
    if cfg.model.fmr > FLOOR_FMR:
        out.append(f"model.fmr = {cfg.model.fmr:g}: looser than {FLOOR_FMR:g}")
    if p.min_face_px < FLOOR_MIN_FACE_PX:
        out.append(f"policy.min_face_px = {p.min_face_px:g}: faces under {FLOOR_MIN_FACE_PX:g} px are too small "
                   "to judge")
    if not cfg.liveness.enabled:
        out.append("liveness.enabled = false: a printed photo of the enrolled person opens the door")
    elif cfg.liveness.threshold == 0.0:
        out.append("liveness.threshold = 0: every frame counts as live (liveness off in effect)")
    if cfg.mqtt.enabled and cfg.mqtt.credentials_file and not cfg.mqtt.tls:
        out.append("mqtt.credentials_file with mqtt.tls = false: the broker password crosses the network in clear")
    return out


def insecure_settings(cfg: Config) -> list[str]:
    """The floor breaches a config runs with (only possible with allow_insecure)."""
    return below_floor(cfg) if cfg.security.allow_insecure else []


def is_video_file(device: str) -> bool:
    """An opencv camera.device that names a file (not an index, a /dev node or a URL)."""
    from .v4l2 import is_index

    return not (is_index(device) or device.startswith("/dev/") or "://" in device)


def missing_files(cfg: Config) -> list[str]:
    """What the daemon needs on disk and would fail on at start, one sentence each."""
    out = []
    if cfg.camera.source == "opencv" and is_video_file(cfg.camera.device) and not Path(cfg.camera.device).is_file():
        out.append(f"camera.device: video file {cfg.camera.device!r} not found")
    template = cfg.state_path(cfg.template.path)
    if not template.exists():
        out.append(f"template.path: nobody is enrolled: no household file at {template}; enroll first "
                   "(facelatch enroll --config CONFIG --name NAME IMG...)")
    for key, value in (("template.key_file", cfg.template.key_file),
                       ("mqtt.credentials_file", cfg.mqtt.credentials_file),
                       ("mqtt.unlock_code_file", cfg.mqtt.unlock_code_file), ("mqtt.ca_file", cfg.mqtt.ca_file),
                       ("model.models_dir", cfg.model.models_dir)):
        if value and not Path(value).exists() and (cfg.mqtt.enabled or not key.startswith("mqtt.")):
            out.append(f"{key}: {value} not found")
    return out + card_problems(cfg)


def card_problems(cfg: Config) -> list[str]:
    """The model cards the daemon would load: present, and model.fmr a row of the encoder's."""
    from .modelcard import ENCODER_KINDS, load_card, models_dir
    from .pipeline import _card_path

    models = Path(cfg.model.models_dir) if cfg.model.models_dir else models_dir()
    out = []
    for key, name, kind in (("model.encoder", cfg.model.encoder, ENCODER_KINDS),
                            ("liveness.model", cfg.liveness.model if cfg.liveness.enabled else "", "liveness")):
        if not name:
            continue
        try:
            card = load_card(_card_path(name, models), kind=kind, verify=False)
            if key == "model.encoder":
                card.threshold(cfg.model.fmr, exact=True)
        except FacelatchError as e:
            out.append(f"{'model.fmr' if 'not a row' in str(e) else key}: {e}")
    return out


def parse(data: dict, files: bool = False) -> Config:
    """A Config from parsed TOML, or FacelatchError listing every problem (one per line);
    ``files``: also every file the daemon needs that is missing (``missing_files``)."""
    problems: list[str] = []
    cfg = Config()
    sections = {f.name for f in dataclasses.fields(Config) if f.default_factory is not dataclasses.MISSING}
    top = {f.name for f in dataclasses.fields(Config)} - set(sections)
    for key, value in data.items():
        if key in top:
            setattr(cfg, key, _check_value(key, getattr(cfg, key), value, problems))
        elif key in sections:
            if not isinstance(value, dict):
                problems.append(f"[{key}] must be a table")
                continue
            section = getattr(cfg, key)
            names = {f.name for f in dataclasses.fields(section)}
            updates = {}
            for k, v in value.items():
                if k not in names:
                    problems.append(f"{key}.{k}: unknown key (known: {', '.join(sorted(names))})")
                    continue
                updates[k] = _check_value(f"{key}.{k}", getattr(section, k), v, problems)
            setattr(cfg, key, dataclasses.replace(section, **updates))
        else:
            problems.append(f"{key}: unknown key or section")
    p = cfg.policy
    if p.k > p.n:
        problems.append(f"policy.k ({p.k}) must not exceed policy.n ({p.n})")
    if p.backoff_max_s < p.backoff_s:
        problems.append("policy.backoff_max_s must be at least policy.backoff_s")
    if cfg.actuator.kind == "command" and not cfg.actuator.command:
        problems.append("actuator.command: required (an argv list) when actuator.kind = \"command\"")
    if cfg.camera.source == "images" and not Path(cfg.camera.device).is_dir():
        problems.append(f"camera.device: image folder {cfg.camera.device!r} not found")
    m = cfg.mqtt
    if m.reconnect_max_s < m.reconnect_min_s:
        problems.append("mqtt.reconnect_max_s must be at least mqtt.reconnect_min_s")
    if not m.node_id or not all(ch.isalnum() or ch in "_-" for ch in m.node_id):
        problems.append(f"mqtt.node_id: letters, digits, '_' and '-' only, got {m.node_id!r}")
    if m.remote_unlock and not m.tls:
        problems.append("mqtt.remote_unlock = true needs mqtt.tls = true (the unlock code must not cross the network in clear)")
    if not cfg.security.allow_insecure:
        problems += [f"{b} (security floor; set [security] allow_insecure = true to run anyway)"
                     for b in below_floor(cfg)]
    if files:
        if "STATE_DIRECTORY" in os.environ and "state_dir" not in data:
            cfg.state_dir = os.environ["STATE_DIRECTORY"].split(":")[0]
        problems += missing_files(cfg)
    if problems:  # all of them, one line each (one problem: one line)
        raise FacelatchError("invalid configuration: " + problems[0] if len(problems) == 1 else
                             "invalid configuration:\n  " + "\n  ".join(problems))
    return cfg


def load(path, files: bool = False) -> Config:
    """The config at ``path`` (see ``parse``; ``files``: as the daemon needs it)."""
    path = Path(path)
    raw = read_input(path, "config file")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise FacelatchError(f"config {path} is not UTF-8 text (byte {e.start})") from None
    except ValueError as e:  # TOMLDecodeError, or an integer too long to convert
        raise FacelatchError(f"config {path} is not valid TOML: {str(e)[:200]}") from None
    except RecursionError:
        raise FacelatchError(f"config {path} is nested too deeply") from None
    cfg = parse(data, files)
    if "STATE_DIRECTORY" in os.environ and "state_dir" not in data:
        cfg.state_dir = os.environ["STATE_DIRECTORY"].split(":")[0]
    return cfg
