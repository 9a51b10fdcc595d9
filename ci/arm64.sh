#!/usr/bin/env bash
# The Raspberry Pi path, proved under emulation: a Debian bookworm arm64 root (what
# Raspberry Pi OS 64-bit is built on) run through qemu-user >= 10 via binfmt_misc;
# the project installed there exactly as docs/raspberry-pi.md
# says (system python3-numpy, venv --system-site-packages, pip install ".[pi]"),
# then `facelatch demo`, the device tests (everything that needs no TensorFlow) and
# the cross-architecture check against this machine's demo.
#
#   ci/arm64.sh [HOST_PYTHON]     HOST_PYTHON: an x86-64 python with facelatch installed
#                                 (default .venv/bin/python, made by the README's test command)
#
# Exit 0 with a "SKIP" line where it cannot run (not root, binfmt_misc not mountable,
# no QEMU >= 10 obtainable); any failure of the install, demo, tests or check exits 1.
# The root (and pip's cache) is kept under $FACELATCH_CI_CACHE (default
# /var/cache/facelatch-ci), so a second run skips debootstrap; the root's venv is kept
# while pyproject.toml is unchanged (FACELATCH_CI_FRESH=1: a fresh one), so a second run
# also skips most downloads.
set -euo pipefail
{ # one compound command: bash reads all of it before running, so editing this file mid-run is safe
cd "$(dirname "$0")/.."
SRC=$PWD
HOST_PY=${1:-$SRC/.venv/bin/python}
CACHE=${FACELATCH_CI_CACHE:-/var/cache/facelatch-ci}
ROOT=$CACHE/bookworm-arm64
MIRROR=${FACELATCH_CI_MIRROR:-http://deb.debian.org/debian}
QEMU_MIN=10
# the emulated CPUs.  The install, demo and tests run on a Raspberry Pi 5's core (Cortex-A76:
# XNNPACK's int8 kernels use its SDOT instruction, which QEMU emulates 3-5x faster than the
# Pi 4's multiply-accumulate sequences: BENCHMARKS.md "on arm64"); the demo runs once more on a
# Pi 4's core (Cortex-A72), so both kernel paths a Pi owner can get meet the cross-arch check.
QEMU_CPU=${FACELATCH_CI_QEMU_CPU:-cortex-a76}
QEMU_CPU_PI4=${FACELATCH_CI_QEMU_CPU_PI4:-cortex-a72}
T0=$SECONDS

say() { printf '[arm64 %3dm%02ds] %s\n' $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60)) "$*"; }
skip() { say "SKIP: $*"; exit 0; }
cpu_times() {  # `times` in this shell (a pipe would run it in a subshell that has no children)
    times > "$CACHE/times.txt"
    say "CPU time of the processes it waited for (user, system): $(tail -1 "$CACHE/times.txt")"
}

[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot, binfmt_misc)"

# --- 1. binfmt_misc --------------------------------------------------------------
BINFMT=${FACELATCH_CI_BINFMT:-/proc/sys/fs/binfmt_misc}  # overridable for the skip test
if [ ! -e $BINFMT/register ]; then
    mount -t binfmt_misc binfmt_misc $BINFMT 2>/dev/null \
        || skip "binfmt_misc cannot be mounted here, so arm64 binaries cannot run (no emulated run)"
fi

# --- 2. QEMU >= 10 (bookworm's 7.2 makes LiteRT segfault in allocate_tensors) -----
qemu_major() { "$1" --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1; }
QEMU=$(command -v qemu-aarch64-static || true)
if [ -z "$QEMU" ] || [ "$(qemu_major "$QEMU")" -lt $QEMU_MIN ] || ! command -v debootstrap >/dev/null; then
    say "installing qemu-user-static (bookworm-backports) and debootstrap"
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb $MIRROR bookworm-backports main" > /etc/apt/sources.list.d/facelatch-ci-backports.list
    fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
        qemu-user-static >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null) \
        || skip "could not install qemu-user-static >= $QEMU_MIN and debootstrap"
    QEMU=$(command -v qemu-aarch64-static || true)
fi
[ -n "$QEMU" ] && [ "$(qemu_major "$QEMU")" -ge $QEMU_MIN ] \
    || skip "qemu-aarch64-static >= $QEMU_MIN not available ($(qemu_major "${QEMU:-none}" || true))"
say "$("$QEMU" --version | head -1)"

# register qemu-aarch64 with F (the interpreter is opened now, so it works inside the chroot)
if [ -e $BINFMT/qemu-aarch64 ]; then
    interp=$(sed -n 's/^interpreter //p' $BINFMT/qemu-aarch64)
    if [ "$(qemu_major "$interp")" -lt $QEMU_MIN ] || ! grep -q '^flags:.*F' $BINFMT/qemu-aarch64; then
        echo -1 > $BINFMT/qemu-aarch64       # an old QEMU or no F flag: replace it
    fi
fi
if [ ! -e $BINFMT/qemu-aarch64 ]; then
    magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    echo ":qemu-aarch64:M::$magic:$mask:$QEMU:OCF" > $BINFMT/register \
        || skip "binfmt_misc is mounted but does not accept a registration"
fi
say "binfmt_misc: $(sed -n 's/^interpreter //p' $BINFMT/qemu-aarch64) ($(sed -n 's/^flags: //p' $BINFMT/qemu-aarch64))"

[ -x "$HOST_PY" ] || { say "FAIL: no host python with facelatch at $HOST_PY (needed for the cross-architecture check; run the README's test command first)"; exit 1; }

# --- 3. the arm64 root (cached) ----------------------------------------------------
# Raspberry Pi OS 64-bit is Debian bookworm arm64 plus the Pi's own repository;
# python3-picamera2 comes from that repository and is not installed here.
PKGS=python3,python3-venv,python3-numpy,ca-certificates
if [ ! -x "$ROOT/usr/bin/python3" ]; then
    say "debootstrap bookworm arm64 into $ROOT (cold: several minutes under emulation)"
    rm -rf "$ROOT.partial" && mkdir -p "$CACHE"
    debootstrap --arch=arm64 --variant=minbase --include=$PKGS bookworm "$ROOT.partial" "$MIRROR" \
        > "$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; say "FAIL: debootstrap"; exit 1; }
    mv "$ROOT.partial" "$ROOT"
    say "root ready"
else
    say "cached root $ROOT"
fi

# --- 4. install as docs/raspberry-pi.md says -------------------
# Inside a private mount namespace: /proc, /dev, /sys, the run folder and pip's cache are
# mounted for this run only and vanish with it.
RUN=$CACHE/run && rm -rf "$RUN" && mkdir -p "$RUN" "$CACHE/pip"
rm -rf "$ROOT/root/facelatch" && mkdir -p "$ROOT/root/facelatch"
# The venv is kept between runs while the dependencies (pyproject.toml) stay the same: the
# README's install command then runs on it again and reinstalls facelatch itself (a warm
# run); a changed pyproject.toml, FACELATCH_CI_FRESH=1 or a cold root gets a fresh venv.
TEST_TOOLS="pytest pytest-xdist hypothesis"   # not part of the Pi install; hypothesis: the parser fuzz tests
VENV_KEY=$( (sha256sum pyproject.toml; echo "$TEST_TOOLS") | sha256sum | cut -c1-16)
if [ "${FACELATCH_CI_FRESH:-0}" = 1 ] || [ "$(cat "$ROOT/root/facelatch-venv/.facelatch-ci-key" 2>/dev/null)" != "$VENV_KEY" ]; then
    rm -rf "$ROOT/root/facelatch-venv"
fi
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$ROOT/root/facelatch"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# pip inside trusts what this machine trusts (a CI host behind a TLS-inspecting proxy
# adds its CA to the system bundle; the fresh root's bundle would not know it)
HOST_CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$HOST_CA" ]; then cp "$HOST_CA" "$ROOT/etc/ssl/facelatch-ci-host-ca.crt"; fi
cat > "$ROOT/root/facelatch-ci.sh" <<'INNER'
set -euo pipefail
export HOME=/root LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
if [ -f /etc/ssl/facelatch-ci-host-ca.crt ]; then export PIP_CERT=/etc/ssl/facelatch-ci-host-ca.crt; fi
say() { printf '[arm64 inside] %s\n' "$*"; }
cd /root
say "$(uname -m), $(. /etc/os-release; echo "$PRETTY_NAME"), $(python3 --version), system numpy $(python3 -c 'import numpy; print(numpy.__version__)')"
t=$SECONDS
if [ -x ~/facelatch-venv/bin/python ]; then fresh="kept venv (same pyproject.toml)"; else fresh="fresh venv"; fi
python3 -m venv --system-site-packages ~/facelatch-venv
~/facelatch-venv/bin/pip install -q "./facelatch[pi]"
say "install ($fresh): $((SECONDS - t)) s: $(~/facelatch-venv/bin/python -c 'from importlib.metadata import version as v
print(", ".join(f"{p} {v(p)}" for p in ("numpy", "opencv-python-headless", "ai-edge-litert", "gpiozero", "cryptography")))')"
# Everything up to the tests runs one process at a time, so the machine-readable demos
# (for the cross-arch check, on both Pi cores) run beside the README's demo and the
# bench; the Pi 4 core's goes on beside the tests, which read the Pi 5 core's and the
# README demo's output (FACELATCH_DEMO_JSON, _TEXT) instead of running them once more.
t=$SECONDS
~/facelatch-venv/bin/facelatch demo --json > /run-out/arm64-demo.jsonl 2> /run-out/demo-json.err &
json_demo=$!
QEMU_CPU=$QEMU_CPU_PI4 ~/facelatch-venv/bin/facelatch demo --json > /run-out/arm64-pi4-demo.jsonl \
    2> /run-out/demo-pi4-json.err &
json_demo_pi4=$!
~/facelatch-venv/bin/facelatch demo | tee /run-out/arm64-demo.txt
say "demo: $((SECONDS - t)) s"
~/facelatch-venv/bin/facelatch bench --seconds 5
if [ "$fresh" = "fresh venv" ]; then
    ~/facelatch-venv/bin/pip install -q $TEST_TOOLS   # fewer hypothesis examples here (tests/test_fuzz.py)
fi
wait $json_demo || { cat /run-out/demo-json.err; say "FAIL: demo --json"; exit 1; }
say "demo --json on $QEMU_CPU, beside the demo and the bench: done at $((SECONDS - t)) s"
t=$SECONDS
echo "$VENV_KEY" > ~/facelatch-venv/.facelatch-ci-key
cd ~/facelatch
# frames take ~100x longer than on x86-64 here: time bounds in the tests scale by 50;
# two workers (the CI machine has two cores), each taking whole files, so that a module's
# fixtures (the demo, the enrolled template, the fusion's embeddings) are computed once
FACELATCH_DEMO_JSON=/run-out/arm64-demo.jsonl FACELATCH_DEMO_TEXT=/run-out/arm64-demo.txt \
FACELATCH_TEST_TIME_SCALE=${FACELATCH_TEST_TIME_SCALE:-50} ~/facelatch-venv/bin/python -m pytest -q -n 2 \
    --dist loadfile -p no:cacheprovider -rs --durations=60 2>&1 \
    | tee /run-out/pytest.log
say "tests: $((SECONDS - t)) s"
wait $json_demo_pi4 || { cat /run-out/demo-pi4-json.err; say "FAIL: demo --json on $QEMU_CPU_PI4"; exit 1; }
say "demo --json on the Pi 4 core ($QEMU_CPU_PI4), beside the tests: done"
INNER
say "installing and testing inside the arm64 root (emulated CPU: $QEMU_CPU; the demo also on $QEMU_CPU_PI4)"
trap cpu_times EXIT
set +e
unshare --mount --propagation private bash -euc '
    ROOT=$1 RUN=$2 PIPCACHE=$3
    mount -t proc proc "$ROOT/proc"
    mount --rbind /dev "$ROOT/dev"
    mount --rbind /sys "$ROOT/sys"     # XNNPACK reads the CPU list there; without it, it is off
    mkdir -p "$ROOT/root/.cache/pip" "$ROOT/run-out"
    mount --bind "$PIPCACHE" "$ROOT/root/.cache/pip"
    mount --bind "$RUN" "$ROOT/run-out"
    exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin QEMU_CPU="$4" VENV_KEY="$5" TEST_TOOLS="$6" \
        QEMU_CPU_PI4="$7" FACELATCH_TEST_TIME_SCALE="${FACELATCH_TEST_TIME_SCALE:-}" \
        bash /root/facelatch-ci.sh' _ "$ROOT" "$RUN" "$CACHE/pip" "$QEMU_CPU" "$VENV_KEY" "$TEST_TOOLS" "$QEMU_CPU_PI4"
inner=$?
set -e
[ $inner = 0 ] || { say "FAIL: install, demo or tests inside the arm64 root (exit $inner)"; exit 1; }

# --- 5. the cross-architecture check ------------------------------------------------
"$HOST_PY" -m edge.cli demo --json > "$RUN/x86-demo.jsonl"
for arm in arm64 arm64-pi4; do
    say "cross-architecture check: x86-64 vs $arm"
    "$HOST_PY" ci/cross_arch.py "$RUN/x86-demo.jsonl" "$RUN/$arm-demo.jsonl" || { say "FAIL: cross-architecture check ($arm)"; exit 1; }
done
say "PASS: arm64 install, demo, device tests and cross-architecture check in $(((SECONDS - T0) / 60)) min $(((SECONDS - T0) % 60)) s"
exit 0
}
