"""A virtual V4L2 camera (v4l2loopback and the like) is refused: any program can feed it
a still photo that every frame cue takes as live.  The kernel's sysfs view is built in a
temporary folder here, laid out as Linux lays it out for a loopback device (under
/sys/devices/virtual) and for a USB webcam (under its bus)."""

import pytest

from conftest import host_only, run_cli
from frames import write_demo_template

from edge import v4l2
from edge.camera import CameraError, OpenCVCamera
from edge.errors import FacelatchError


def fake_sysfs(root, node, name, parent):
    """``root``/class/video4linux/``node`` -> ``root``/devices/``parent``/video4linux/``node``, with its name file."""
    dev = root / "devices" / parent / "video4linux" / node
    dev.mkdir(parents=True)
    (dev / "name").write_text(name + "\n")
    cls = root / "class" / "video4linux"
    cls.mkdir(parents=True, exist_ok=True)
    (cls / node).symlink_to(dev)
    return root


@pytest.mark.parametrize("node,name,parent", [
    ("video7", "Dummy video device (0x0000)", "virtual"),  # v4l2loopback's default
    ("video8", "Front door", "virtual"),  # relabelled, still no bus behind it
    ("video9", "OBS Virtual Camera", "platform/v4l2loopback.0"),  # parented, but named as such
])
def test_a_virtual_camera_is_refused_unless_insecure_is_allowed(tmp_path, monkeypatch, node, name, parent):
    monkeypatch.setattr(v4l2, "SYSFS", fake_sysfs(tmp_path, node, name, parent))
    for device in (f"/dev/{node}", node.removeprefix("video")):
        assert v4l2.virtual_camera_reason(device)
        with pytest.raises(FacelatchError, match="refusing camera.*allow_insecure"):
            OpenCVCamera(device).open()
        # allowed: the check passes and the open itself is tried (there is no such device here)
        with pytest.raises(CameraError):
            OpenCVCamera(device, allow_virtual=True).open()


def test_a_real_camera_and_other_sources_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(v4l2, "SYSFS", fake_sysfs(tmp_path, "video0", "HD Webcam C525",
                                                  "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0"))
    assert v4l2.virtual_camera_reason("/dev/video0") is None
    assert v4l2.virtual_camera_reason("0") is None
    assert v4l2.virtual_camera_reason("rtsp://door.local/stream") is None
    assert v4l2.virtual_camera_reason("/dev/video3") is None  # no sysfs entry: nothing to tell
    with pytest.raises(CameraError):  # not refused: opened (and absent here)
        OpenCVCamera("/dev/video0").open()


@host_only  # loads the models once to reach the camera; the check itself is tested above on every machine
def test_the_door_refuses_to_start_on_a_virtual_camera(tmp_path, monkeypatch):
    monkeypatch.setattr(v4l2, "SYSFS", fake_sysfs(tmp_path / "sys", "video7", "Dummy video device (0x0000)", "virtual"))
    (tmp_path / "state").mkdir()
    write_demo_template(tmp_path / "state" / "template.json")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'state_dir = "{tmp_path / "state"}"\n[camera]\nsource = "opencv"\ndevice = "/dev/video7"\n')
    rc, out, err = run_cli("run", "--config", str(cfg))
    assert rc != 0
    lines = [line for line in err.splitlines() if "refusing camera" in line]
    assert len(lines) == 1 and "virtual video device" in lines[0] and "allow_insecure" in lines[0]
    assert not (tmp_path / "state" / "audit.jsonl").exists() or "unlock" not in (tmp_path / "state" / "audit.jsonl").read_text()


def test_a_virtual_camera_behind_any_link_or_relative_path_is_refused(tmp_path, monkeypatch):
    """OpenCV opens a V4L2 node by any path that leads to it, not only by /dev/...:
    a link elsewhere (/srv/cams/front -> /dev/video7) or a relative path."""
    monkeypatch.setattr(v4l2, "SYSFS", fake_sysfs(tmp_path / "sys", "video7", "Dummy video device (0x0000)", "virtual"))
    (tmp_path / "cams").mkdir()
    (tmp_path / "cams" / "front").symlink_to("/dev/video7")
    monkeypatch.chdir(tmp_path)
    for device in (str(tmp_path / "cams" / "front"), "cams/front", "/dev/./video7", "/dev//video7"):
        assert v4l2.virtual_camera_reason(device), device
        with pytest.raises(FacelatchError, match="refusing camera"):
            OpenCVCamera(device).open()


def test_odd_index_strings_are_no_crash(tmp_path, monkeypatch):
    monkeypatch.setattr(v4l2, "SYSFS", fake_sysfs(tmp_path, "video1", "Dummy video device (0x0000)", "virtual"))
    assert v4l2.virtual_camera_reason("01")  # OpenCV's index 1, as int("01") says
    for device in ("²", "٣", "", " 1"):  # str.isdigit() is true for the first two; int("²") raises
        assert v4l2.virtual_camera_reason(device) is None
        with pytest.raises(CameraError):  # an ordinary "cannot open", not a ValueError traceback
            OpenCVCamera(device).open()
