"""A real Mosquitto broker for the MQTT tests: started on 127.0.0.1 on a free port
with a temporary config (optionally TLS with a throwaway CA, and a password file);
the tests that use it skip when the ``mosquitto`` binary is absent."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed (apt-get install mosquitto)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tls(folder: Path) -> dict:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "facelatch test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(pem))
    files["cert"].write_bytes(cert.public_bytes(pem))
    files["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption()))
    return files


class Broker:
    """``start()``/``stop()`` a mosquitto process on a fixed port (restartable)."""

    def __init__(self, folder: Path, tls: bool = False, users: dict | None = None):
        self.folder, self.port = folder, free_port()
        self.tls = make_tls(folder) if tls else None
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to 'mosquitto' and cannot read these files
        if self.tls:
            lines += [f"cafile {self.tls['ca']}", f"certfile {self.tls['cert']}", f"keyfile {self.tls['key']}"]
        if users:
            if MOSQUITTO_PASSWD is None:
                pytest.skip("mosquitto_passwd not installed")
            pw = folder / "passwd"
            for i, (u, p) in enumerate(users.items()):
                subprocess.run([MOSQUITTO_PASSWD, *(["-c"] if i == 0 else []), "-b", str(pw), u, p], check=True)
            lines += [f"password_file {pw}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc = None

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "mosquitto.log", "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.folder / "mosquitto.log").read_text())
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(timeout=10)


class Watcher:
    """A paho client that records every message on the given topic filters."""

    def __init__(self, broker: Broker, *filters: str, user: tuple | None = None):
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, str, bool]] = []
        self.cond = threading.Condition()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2)
        if user:
            self.c.username_pw_set(*user)
        if broker.tls:
            self.c.tls_set(ca_certs=str(broker.tls["ca"]))
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe([(t, 1) for t in filters])
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(1, 1)
        self.c.connect_async("127.0.0.1", broker.port, keepalive=10)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, msg.payload.decode(errors="replace"), bool(msg.retain)))
            self.cond.notify_all()

    def wait_for(self, pred, timeout=10.0):
        """The first recorded message (topic, payload, retained) satisfying ``pred``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages:
                    if pred(*m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such message in {timeout} s; got {[m[:2] for m in self.messages][-20:]}")
                self.cond.wait(left)

    def payloads(self, topic):
        with self.cond:
            return [p for t, p, _ in self.messages if t == topic]

    def connected(self, timeout: float = 10.0) -> "Watcher":
        deadline = time.monotonic() + timeout
        while not self.c.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def publish(self, topic, payload, retain=False):
        self.connected()
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def json(self, topic):
        return [json.loads(p) for p in self.payloads(topic)]

    def fresh_nonce(self, base: str, timeout: float = 10.0) -> str:
        """The newest nonce the device at ``base`` (facelatch/<node_id>) offers that this
        watcher has not used yet (it must subscribe to ``base/nonce``)."""
        used = getattr(self, "_used", set())
        self._used = used
        self.wait_for(lambda t, p, r: t == f"{base}/nonce" and p not in used, timeout)
        nonce = [p for p in self.payloads(f"{base}/nonce") if p not in used][-1]
        used.add(nonce)
        return nonce

    def signed(self, base: str, target: str, action: str, secret: str, nonce: str | None = None) -> str:
        """Publish a command signed as the owner would (edge.commands.sign); the payload."""
        from edge.commands import sign

        nonce = nonce or self.fresh_nonce(base)
        topic = f"{base}/{target}/set"
        payload = json.dumps({"action": action, "nonce": nonce, "mac": sign(secret.encode(), topic, action, nonce)})
        self.publish(topic, payload)
        return payload

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()
