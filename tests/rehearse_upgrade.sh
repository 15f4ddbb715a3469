#!/usr/bin/env bash
# Upgrade check: a box on the last release before the issue-22 renovation (429e7c6, bundled as 1.4.0)
# takes a signed update to the renovated firmware (main HEAD, bundled as 1.5.0), proves healthy on it
# through a status file the renovated firmware writes itself, rolls back to 1.4.0 (which then reports
# healthy from the same status file), and finally refuses a deliberately broken 1.5.1 by automatic
# rollback. Every step runs the real commands (humus-release, humus update/rollback/releases/status);
# on the "box", `humus` is the code of the release `current` points at, as install.sh's launcher
# (.pth = /opt/humus/current/app) makes it. systemctl is a fake whose `restart` starts the
# current release's own `humus run --config ROOT/etc/humus/humus.toml` (appliance mode: realtime,
# status file, every device simulated by the config), in the background, like humus.service.
#
#   bash tests/rehearse_upgrade.sh [OLD_COMMIT [NEW_COMMIT]]   (KEEP_WORKTREES=1 keeps the worktrees)
#
# A rehearsal for a field tech's update across a big change, run by hand (minutes; not part of CI).
set -u
REPO=${REPO:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel)}
PY=${PY:-$REPO/.venv/bin/python}
OLD=/tmp/rel-old
NEW=/tmp/rel-new
OLD_COMMIT=${1:-429e7c6}
NEW_COMMIT=${2:-HEAD}
W=/tmp/upgrade-check
ROOT=$W/root
SVC=$W/svc
NICE="nice -n 10"
SERVICE_DURATION=${SERVICE_DURATION:-240}   # safety net: the fake service ends by itself
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-240}
T0=$(date +%s)
FAILS=()

say()  { printf '\n=== [%4ds] %s\n' $(( $(date +%s) - T0 )) "$*"; }
fail() { echo "CHECK FAILED: $*"; FAILS+=("$*"); }
ok()   { echo "check ok: $*"; }

# A command, echoed, with its exit code.
runc() {
  echo "\$ $*"
  "$@"
  local rc=$?
  echo "-> exit $rc"
  return $rc
}

# `humus` on the box: the current release's own code (install.sh's launcher + .pth do this).
humus_box() {
  local app; app=$(readlink -f "$ROOT/opt/humus/current/app")
  echo "\$ humus $*    # PYTHONPATH=$app"
  (cd "$W/empty" && PYTHONPATH="$ROOT/opt/humus/current/app" $NICE "$PY" -m firmware.cli "$@")
  local rc=$?
  echo "-> exit $rc"
  return $rc
}

status_fields() {   # the status file's fields both firmwares must agree on
  "$PY" - "$ROOT/run/humus/status.json" <<'EOF'
import json, sys, time
s = json.load(open(sys.argv[1]))
age = time.time() - s["updated_at"]
print(f"status.json: release={s.get('release')!r} state={s.get('state')!r} show={s.get('show')!r} "
      f"model={s.get('model')!r} engine={s.get('engine')!r} fps={s.get('fps')} pid={s.get('pid')} "
      f"age={age:.1f}s faults={[f.get('text') if isinstance(f, dict) else f for f in s.get('faults', [])][-3:]}")
print("status.json keys:", sorted(s))
EOF
}

# Wait until the status file says `release` is running (fresh heartbeat), or give up.
wait_running() {
  local want=$1 limit=$2 since=$3 t=0
  while (( t < limit )); do
    if "$PY" - "$ROOT/run/humus/status.json" "$want" "$since" <<'EOF' 2>/dev/null
import json, sys, time
s = json.load(open(sys.argv[1]))
ok = (s.get("release") == sys.argv[2] and s.get("state") not in (None, "starting", "fault", "safe", "stopping")
      and time.time() - s["updated_at"] < 5 and s["started_at"] >= float(sys.argv[3]))
sys.exit(0 if ok else 1)
EOF
    then echo "status file: $want running after ~${t}s"; return 0; fi
    sleep 2; t=$((t + 2))
  done
  echo "status file: $want NOT running after ${limit}s"; return 1
}

stop_service() { FAKE_ROOT=$ROOT FAKE_SVC=$SVC FAKE_PY=$PY "$W/bin/systemctl" stop humus.service >/dev/null 2>&1 || true; }
cleanup() {
  stop_service
  if [ "${KEEP_WORKTREES:-0}" != 1 ]; then
    git -C "$REPO" worktree remove --force "$OLD" 2>/dev/null && echo "removed worktree $OLD"
    git -C "$REPO" worktree remove --force "$NEW" 2>/dev/null && echo "removed worktree $NEW"
  fi
}
trap cleanup EXIT

# --- 0. worktrees and a clean work folder ----------------------------------------------------------
say "0. worktrees: $OLD at $OLD_COMMIT, $NEW at $NEW_COMMIT"
[ -d "$OLD" ] || git -C "$REPO" worktree add "$OLD" "$OLD_COMMIT" >/dev/null 2>&1
[ -d "$NEW" ] || git -C "$REPO" worktree add "$NEW" "$NEW_COMMIT" >/dev/null 2>&1
echo "old: $(git -C "$OLD" log -1 --format='%h %s' | cut -c1-100)"
echo "new: $(git -C "$NEW" log -1 --format='%h %s' | cut -c1-100)"
[ -f "$SVC/pid" ] && stop_service
rm -rf "$W"; mkdir -p "$W"/{keys,bundles,bin,empty} "$SVC/cwd"

# --- fake systemctl ------------------------------------------------------------------------------
cat > "$W/bin/systemctl" <<EOF
#!$PY
"""Fake systemctl for humus.service. restart = stop, then like the unit: ExecStartPre humus recover
(previous release's code, else current's), ExecStart humus run --config ROOT/etc/humus/humus.toml
with the *current* release's code (PYTHONPATH=ROOT/opt/humus/current/app), detached."""
import os, signal, subprocess, sys, time
root, svc, py = os.environ["FAKE_ROOT"], os.environ["FAKE_SVC"], os.environ["FAKE_PY"]
dur = os.environ.get("FAKE_DURATION", "240")
args = [a for a in sys.argv[1:] if not a.startswith("--")]
with open(os.path.join(svc, "systemctl.log"), "a") as log:
    log.write(time.strftime("%H:%M:%S ") + " ".join(sys.argv[1:]) + "\n")
pidf, rcf = os.path.join(svc, "pid"), os.path.join(svc, "rc")

def pid():
    try:
        p = int(open(pidf).read())
        os.kill(p, 0)
        if open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
            return None           # a zombie nobody reaps: dead
        return p
    except (OSError, ValueError):
        return None

def stop():
    p = pid()
    if p is None:
        return
    try:
        os.killpg(p, signal.SIGTERM)
    except OSError:
        return
    for _ in range(150):          # TimeoutStopSec
        if pid() is None:
            break
        try:                      # reap if it is our child (it is not: detached), else poll
            os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        try:
            os.killpg(p, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.2)

cmd = args[0]
if cmd == "is-active":
    if pid() is not None:
        print("active"); sys.exit(0)
    rc = open(rcf).read().strip() if os.path.exists(rcf) else ""
    print("failed" if rc not in ("", "0", "stopped") else "inactive"); sys.exit(3)
elif cmd == "reset-failed":
    sys.exit(0)
elif cmd == "stop":
    stop(); open(rcf, "w").write("stopped"); sys.exit(0)
elif cmd in ("restart", "start"):
    stop()
    n = len([f for f in os.listdir(svc) if f.startswith("service-")]) + 1
    logf = os.path.join(svc, f"service-{n}.log")
    cur, prev = os.path.join(root, "opt/humus/current/app"), os.path.join(root, "opt/humus/previous/app")
    script = f'''
echo "=== service start {n}: current -> \$(readlink {root}/opt/humus/current)  \$(date +%T)"
if [ -d {prev} ]; then PYTHONPATH={prev} {py} -m firmware.cli recover --root {root} || PYTHONPATH={cur} {py} -m firmware.cli recover --root {root}
else PYTHONPATH={cur} {py} -m firmware.cli recover --root {root}; fi
PYTHONPATH={cur} {py} -c "import firmware; print('service runs firmware from', firmware.__file__)"
PYTHONPATH={cur} nice -n 10 {py} -X faulthandler -m firmware.cli run --config {root}/etc/humus/humus.toml --duration {dur}
rc=\$?; echo "=== service exited \$rc  \$(date +%T)"; echo \$rc > {rcf}
'''
    if os.path.exists(rcf):
        os.unlink(rcf)
    with open(logf, "w") as out:
        p = subprocess.Popen(["sh", "-c", script], cwd=os.path.join(svc, "cwd"), stdout=out,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    open(pidf, "w").write(str(p.pid))
    sys.exit(0)
else:
    print(f"fake systemctl: {cmd}?", file=sys.stderr); sys.exit(1)
EOF
chmod +x "$W/bin/systemctl"
export HUMUS_SYSTEMCTL=$W/bin/systemctl FAKE_ROOT=$ROOT FAKE_SVC=$SVC FAKE_PY=$PY FAKE_DURATION=$SERVICE_DURATION

# --- 1. keys and a box root that trusts them ---------------------------------------------------------
say "1. key pair (studio side: the renovated humus-release) and a box root trusting it"
(cd "$NEW" && runc $NICE "$PY" -m firmware.appliance.release_cli keygen "$W/keys/studio") || fail "keygen"
mkdir -p "$ROOT/etc/humus/keys" "$ROOT/run/humus" "$ROOT/var/lib/humus"
cp "$W/keys/studio.pub" "$ROOT/etc/humus/keys/"
cat > "$ROOT/etc/humus/humus.toml" <<EOF
# the box's config: every device simulated, a small headless display, the shipped model of the
# current release, the status file under the root
[camera]
type = "sim"
width = 320
height = 240
fps = 10.0
[presence]
type = "sim"
[dmx]
type = "sim"
[display]
type = "headless"
width = 320
height = 180
fps = 10.0
[model]
dir = "$ROOT/opt/humus/current/models/default"
engine = "onnxruntime"
threads = 1
engine_cache = "$ROOT/var/lib/humus/engines"
[status]
path = "$ROOT/run/humus/status.json"
state_dir = "$ROOT/var/lib/humus"
[timesync]
type = "trusted"
EOF
for t in "$OLD" "$NEW"; do
  (cd "$W/empty" && PYTHONPATH=$t "$PY" -m firmware.cli check-config "$ROOT/etc/humus/humus.toml" >/dev/null) \
    && echo "config valid for $(basename "$t")" || fail "config invalid for $t"
done

# --- 2. bundle 1.4.0 from the old release, first install ---------------------------------------------
say "2. bundle 1.4.0 from $OLD (its own humus-release) and first install with its own humus update"
(cd "$OLD" && runc $NICE "$PY" -m firmware.appliance.release_cli build "$OLD" --key "$W/keys/studio.key" \
   --version 1.4.0 -o "$W/bundles/humus-1.4.0.bundle") || fail "build 1.4.0"
echo "\$ humus update humus-1.4.0.bundle --root ROOT --no-restart    # PYTHONPATH=$OLD (first install, no release yet)"
(cd "$W/empty" && PYTHONPATH=$OLD $NICE "$PY" -m firmware.cli update "$W/bundles/humus-1.4.0.bundle" --root "$ROOT" --no-restart)
rc=$?; echo "-> exit $rc"; [ $rc = 0 ] || fail "first install of 1.4.0 (exit $rc)"
ls -l "$ROOT/opt/humus" | sed 's/^/    /'
ls "$ROOT/opt/humus/current/models/default" | sed 's/^/    models\/default: /'

say "2b. start the box on 1.4.0 (systemctl restart) and wait for its status file"
since=$(date +%s.%N)
runc "$W/bin/systemctl" restart --no-block humus.service
wait_running 1.4.0 240 "$since" || { fail "1.4.0 does not report running"; tail -30 "$SVC/service-1.log"; }
status_fields
humus_box status --root "$ROOT" || fail "humus status on 1.4.0"

# --- 3. the update to the renovated firmware, with the real health check ---------------------------
say "3. bundle 1.5.0 from $NEW (renovated humus-release) and humus update on the box (1.4.0's updater)"
(cd "$NEW" && runc $NICE "$PY" -m firmware.appliance.release_cli build "$NEW" --key "$W/keys/studio.key" \
   --version 1.5.0 -o "$W/bundles/humus-1.5.0.bundle") || fail "build 1.5.0"
(cd "$OLD" && runc "$PY" -m firmware.appliance.release_cli verify "$W/bundles/humus-1.5.0.bundle" \
   --keys "$ROOT/etc/humus/keys") || fail "old humus-release cannot verify the new bundle"
humus_box update "$W/bundles/humus-1.5.0.bundle" --root "$ROOT" --restart \
  --health-timeout "$HEALTH_TIMEOUT" --settle 10
rc=$?; [ $rc = 0 ] && ok "update to 1.5.0 healthy" || fail "update to 1.5.0 (exit $rc)"
echo "current -> $(readlink "$ROOT/opt/humus/current"), previous -> $(readlink "$ROOT/opt/humus/previous")"
status_fields
humus_box status --root "$ROOT" || fail "humus status on 1.5.0 (exit $?)"
(cd "$W/empty" && PYTHONPATH="$ROOT/opt/humus/current/app" "$PY" -m firmware.cli status --root "$ROOT" --json) | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("status --json: healthy=%s current=%s release=%s model=%s" % (d["healthy"], d["current"], d["status"]["release"], d["status"]["model"]))'
humus_box releases --root "$ROOT" --verify || fail "humus releases on 1.5.0"
echo "\$ humus status --root ROOT    # PYTHONPATH=$OLD: the OLD humus reads the status file the renovated firmware wrote"
(cd "$W/empty" && PYTHONPATH=$OLD "$PY" -m firmware.cli status --root "$ROOT" > "$W/cross.txt" 2>&1); rc=$?; head -4 "$W/cross.txt"
echo "-> exit $rc"; [ $rc = 0 ] || fail "old humus status cannot read the renovated firmware's status file"
echo "\$ humus releases --root ROOT    # PYTHONPATH=$OLD: the OLD humus reads the new state.json"
(cd "$W/empty" && PYTHONPATH=$OLD "$PY" -m firmware.cli releases --root "$ROOT") || fail "old humus releases after update"
grep -h "service runs firmware from" "$SVC"/service-*.log

# --- 4. rollback to the old release ------------------------------------------------------------------
say "4. humus rollback (1.5.0's code) to 1.4.0, and 1.4.0 reports from the same status file"
since=$(date +%s.%N)
humus_box rollback --root "$ROOT" --restart || fail "rollback"
echo "current -> $(readlink "$ROOT/opt/humus/current")"
[ "$(basename "$(readlink "$ROOT/opt/humus/current")")" = 1.4.0 ] && ok "current is 1.4.0" || fail "current after rollback"
wait_running 1.4.0 240 "$since" || { fail "1.4.0 does not report running after rollback"; tail -30 "$(ls -t "$SVC"/service-*.log | head -1)"; }
status_fields
humus_box status --root "$ROOT" || fail "humus status after rollback (exit $?)"
humus_box releases --root "$ROOT" || fail "humus releases after rollback"
echo "\$ humus status --root ROOT    # PYTHONPATH=$NEW: the renovated humus reads the status file the OLD firmware wrote"
(cd "$W/empty" && PYTHONPATH=$NEW "$PY" -m firmware.cli status --root "$ROOT" > "$W/cross.txt" 2>&1); rc=$?; head -4 "$W/cross.txt"
echo "-> exit $rc"; [ $rc = 0 ] || fail "renovated humus status cannot read the old firmware's status file"

# --- 5. a broken renovated release: automatic rollback ----------------------------------------------
say "5. a broken 1.5.1 (renovated firmware whose run_box raises at start): update must roll back to 1.4.0"
mkdir -p "$W/src-broken"
cp -r "$NEW/firmware" "$NEW/models" "$W/src-broken/"
rm -rf "$W/src-broken/models/default/train" "$W/src-broken/models/default/eval"
cat >> "$W/src-broken/firmware/runner.py" <<'EOF'


def run_box(config, options, wall_start=None):   # deliberately broken release for the upgrade check
    raise RuntimeError("deliberately broken release 1.5.1: crashes at start")
EOF
(cd "$NEW" && runc $NICE "$PY" -m firmware.appliance.release_cli build "$W/src-broken" --key "$W/keys/studio.key" \
   --version 1.5.1 -o "$W/bundles/humus-1.5.1.bundle") || fail "build 1.5.1"
since=$(date +%s.%N)
humus_box update "$W/bundles/humus-1.5.1.bundle" --root "$ROOT" --restart --health-timeout 120 --settle 5
rc=$?; [ $rc = 3 ] && ok "broken update refused with exit 3 (rolled back)" || fail "broken update: exit $rc, expected 3"
echo "current -> $(readlink "$ROOT/opt/humus/current")"
[ "$(basename "$(readlink "$ROOT/opt/humus/current")")" = 1.4.0 ] && ok "current is 1.4.0 again" || fail "current after failed update"
grep -h -B2 -A3 "RuntimeError" "$SVC"/service-*.log | tail -8
wait_running 1.4.0 240 "$since" || fail "1.4.0 does not report running after the automatic rollback"
status_fields
humus_box releases --root "$ROOT" || fail "humus releases after failed update"

say "service logs (each start of the fake humus.service)"
for f in "$SVC"/service-*.log; do echo "--- $f"; grep -v '^\s*$' "$f" | tail -6 | cut -c1-220; done
say "fake systemctl calls"
cat "$SVC/systemctl.log"
say "done in $(( $(date +%s) - T0 )) s; ${#FAILS[@]} failed check(s)"
for f in "${FAILS[@]+"${FAILS[@]}"}"; do echo "  FAILED: $f"; done
[ ${#FAILS[@]} = 0 ]
