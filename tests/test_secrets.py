"""Template encryption at rest (AES-GCM) through the CLI."""

import base64
import json
import os
import stat

from conftest import DEMO, run_cli

ENROLL = [DEMO / "enroll/obama.jpg", DEMO / "enroll/obama2.jpg"]
PROBE = DEMO / "probe/obama3.jpg"


def test_encrypted_template_roundtrip_and_failures(tmp_path):
    key, other, tpl = tmp_path / "k", tmp_path / "k2", tmp_path / "t.json"
    assert run_cli("keygen", key)[0] == 0 and run_cli("keygen", other)[0] == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    rc, out, err = run_cli("keygen", key)
    assert rc == 2 and "already exists" in err

    rc, out, err = run_cli("enroll", *ENROLL, "--template", tpl, "--key-file", key)
    assert rc == 0 and "encrypted" in out
    blob = tpl.read_bytes()
    assert b"embeddings" not in blob and json.loads(blob)["format"] == "facelatch-template-aesgcm"

    rc, out, err = run_cli("verify", PROBE, "--template", tpl, "--key-file", key, "--json")
    assert rc == 0 and json.loads(out)["decision"] == "match"

    rc, out, err = run_cli("verify", PROBE, "--template", tpl)
    assert rc == 2 and "encrypted" in err and len(err.strip().splitlines()) == 1
    rc, out, err = run_cli("verify", PROBE, "--template", tpl, "--key-file", other)
    assert rc == 2 and "wrong key" in err

    d = json.loads(blob)
    ct = bytearray(base64.b64decode(d["ciphertext"]))
    ct[10] ^= 1
    d["ciphertext"] = base64.b64encode(bytes(ct)).decode()
    tpl.write_text(json.dumps(d))
    rc, out, err = run_cli("verify", PROBE, "--template", tpl, "--key-file", key)
    assert rc == 2 and "tampered" in err


def test_key_file_readable_by_others_is_refused(tmp_path):
    key = tmp_path / "k"
    run_cli("keygen", key)
    os.chmod(key, 0o644)
    rc, out, err = run_cli("enroll", *ENROLL, "--template", tmp_path / "t.json", "--key-file", key)
    assert rc == 2 and "chmod 600" in err and not (tmp_path / "t.json").exists()


def test_systemd_credential_is_used_by_default(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    run_cli("keygen", creds / "template-key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    tpl = tmp_path / "t.json"
    assert run_cli("enroll", *ENROLL, "--template", tpl)[0] == 0
    assert json.loads(tpl.read_bytes())["format"] == "facelatch-template-aesgcm"
    rc, out, err = run_cli("verify", PROBE, "--template", tpl, "--json")
    assert rc == 0 and json.loads(out)["decision"] == "match"
