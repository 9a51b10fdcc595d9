"""Per-frame time of the real door loop with MQTT off, connected to a real Mosquitto
broker, and with the broker down (nothing listening on its port), interleaved (the order rotating from
round to round) so that the shared machine's load hits all three alike.

Frames: an image folder (not paced) of the enrolled person, a stranger and empty
scenes, liveness on, log actuator; unlock cooldown 0 so that decisions (and MQTT
events) are frequent.  Per-frame time = (last frame - first frame) / (frames - 1)
from the loop's own frame callback, so model loading is not counted.

    python benchmarks/mqtt_overhead.py [--frames 400] [--rounds 5]

It also times the bridge calls the loop makes (per frame: camera; per decision:
decision and door), which is what MQTT adds to the loop's own thread.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from frames import crops, frame, write_sequence  # noqa: E402
from mqtt_broker import MOSQUITTO, Broker, free_port  # noqa: E402

from edge.daemon import run  # noqa: E402
from edge.gallery import Gallery  # noqa: E402
from edge.pipeline import FacePipeline, read_image  # noqa: E402


def per_frame_ms(cfg: Path, frames: int) -> tuple[float, float]:
    """(wall, process CPU) milliseconds per frame; CPU time counts every thread of the
    process (paho's included) and is less disturbed by other programs on the machine."""
    marks = []
    run(str(cfg), max_frames=frames, on_frame=lambda n: marks.append((time.perf_counter(), time.process_time())))
    (w0, c0), (w1, c1) = marks[0], marks[-1]
    return 1000 * (w1 - w0) / (len(marks) - 1), 1000 * (c1 - c0) / (len(marks) - 1)


def call_cost_us(port: int, calls: int = 20000) -> dict:
    """What the frame loop itself spends on MQTT: microseconds per call of the bridge
    methods it makes on every frame (camera) and on every decision (decision, door)."""
    from edge.config import MqttConfig
    from edge.mqtt import MqttBridge

    b = MqttBridge(MqttConfig(enabled=True, host="127.0.0.1", port=port))
    time.sleep(1.0)  # connected (or given up for now)
    record = {"decision": "deny", "reason": "attempt timed out", "best_distance": 0.2, "person": None}
    out = {}
    for name, call in (("camera", lambda i: b.camera(True)), ("decision", lambda i: b.decision(record)),
                       ("door", lambda i: b.door(1.0))):
        t0 = time.perf_counter()
        for i in range(calls):
            call(i)
        out[name] = round(1e6 * (time.perf_counter() - t0) / calls, 2)
    b.close(drain_s=0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if MOSQUITTO is None:
        sys.exit("needs mosquitto (apt-get install mosquitto)")
    tmp = Path(tempfile.mkdtemp())
    c = crops()
    seq = write_sequence(tmp / "frames", ([frame(c["obama"])] * 5 + [frame()] * 3 + [frame(c["hanks"])] * 6
                                          + [frame()] * 2) * 4)
    pipe = FacePipeline(liveness=None)
    g = Gallery(pipe.model_sha256, "cosine")
    g.add("barack", np.stack([pipe.analyze(read_image(ROOT / "edge/demo/enroll" / n))[0].embedding
                              for n in ("obama.jpg", "obama2.jpg")]), [])
    g.save(tmp / "template.json")
    broker = Broker(tmp).start()
    base = (f'state_dir = "{tmp}"\n[liveness]\nthreshold = 0.0\n[security]\nallow_insecure = true\n'
            f'[camera]\nsource = "images"\ndevice = "{seq}"\n'
            f'pace = false\nloop = true\n[policy]\nunlock_cooldown_s = 0.0\nlost_after_s = 0.0\n'
            f'attempt_timeout_s = 0.1\nmax_failed_attempts = 1000\n')
    modes = {"off": "", "connected": f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n',
             "broker down": f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {free_port()}\n'}
    results = {m: [] for m in modes}
    cpu = {m: [] for m in modes}
    order = list(modes)
    for r in range(a.rounds):
        for m in order[r % 3:] + order[:r % 3]:  # each mode runs first, second and third in turn
            extra = modes[m]
            cfg = tmp / "config.toml"
            cfg.write_text(base + extra)
            (tmp / "lockout.json").unlink(missing_ok=True)
            wall, proc = per_frame_ms(cfg, a.frames)
            results[m].append(wall)
            cpu[m].append(proc)
            print(f"round {r + 1} {m:<12} {wall:.3f} ms/frame wall, {proc:.3f} ms/frame CPU", flush=True)
    costs = {"connected": call_cost_us(broker.port), "broker down": call_cost_us(free_port())}
    broker.stop()
    for m, c in costs.items():
        print(f"bridge calls, broker {m}: " + ", ".join(f"{k} {v:.2f} us" for k, v in c.items()))
    audit = (tmp / "audit.jsonl").read_text().splitlines() if (tmp / "audit.jsonl").exists() else []
    summary = {m: {"median_ms": statistics.median(v), "runs_ms": [round(x, 3) for x in v],
                   "cpu_median_ms": statistics.median(cpu[m]), "cpu_runs_ms": [round(x, 3) for x in cpu[m]]}
               for m, v in results.items()}
    off, off_cpu = summary["off"]["median_ms"], summary["off"]["cpu_median_ms"]
    for m, s in summary.items():
        s["vs_off_percent"] = round(100 * (s["median_ms"] / off - 1), 2)
        s["cpu_vs_off_percent"] = round(100 * (s["cpu_median_ms"] / off_cpu - 1), 2)
        print(f"{m:<12} median {s['median_ms']:.3f} ms/frame wall ({s['vs_off_percent']:+.2f} % vs off), "
              f"{s['cpu_median_ms']:.3f} ms/frame CPU ({s['cpu_vs_off_percent']:+.2f} %) over {a.rounds} "
              f"runs of {a.frames} frames")
    print(f"{len(audit)} audit lines written in all runs")
    if a.out:
        a.out.write_text(json.dumps({"per_frame": summary, "call_cost_us": costs}, indent=1))


if __name__ == "__main__":
    main()
