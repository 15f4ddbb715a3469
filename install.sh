#!/usr/bin/env bash
# humus installer. Idempotent: every step checks before it acts and says what it did.
#   ./install.sh                 development machine: .venv with .[cpu,train,dev]
#   ./install.sh --dry-run       print the plan, change nothing
#   ./install.sh --gpu           studio workstation with an NVIDIA card: .[gpu,train,dev] (onnxruntime-gpu in
#                                place of onnxruntime) and CUDA torch from HUMUS_TORCH_INDEX
# Device mode (a Jetson, detected by /etc/nv_tegra_release) installs the appliance:
#   sudo ./install.sh [--key studio.pub]... [--no-pip] [--ort-index URL] [--dry-run]
#   ./install.sh --root DIR ...  lay the appliance into DIR instead of / (DIR/etc/nv_tegra_release
#                                must exist); touches nothing outside DIR, runs no systemctl/useradd.
#   ./install.sh --dev           development .venv even on a Jetson
# Environment: HUMUS_SKIP_PIP=1 (same as --no-pip), HUMUS_ORT_INDEX (Jetson wheel index),
#   HUMUS_TORCH_INDEX (CUDA torch wheels for --gpu; default PyTorch's cu126 index).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${HUMUS_VENV:-$HERE/.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${HUMUS_EXTRAS:-cpu,train,dev}"
DRY_RUN=0
ROOT=""
ROOT_SET=0
SKIP_PIP="${HUMUS_SKIP_PIP:-0}"
ORT_INDEX="${HUMUS_ORT_INDEX:-https://pypi.jetson-ai-lab.dev/jp6/cu126}"
KEYS=()
FORCE_DEV=0
GPU=0
TORCH_INDEX="${HUMUS_TORCH_INDEX:-https://download.pytorch.org/whl/cu126}"

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }
            ROOT="$(cd "$2" 2>/dev/null && pwd)" || { echo "install.sh: --root $2: no such directory" >&2; exit 2; }
            ROOT_SET=1; shift ;;
    --key) [ $# -ge 2 ] || { echo "install.sh: --key needs a .pub file" >&2; exit 2; }
           KEYS+=("$2"); shift ;;
    --no-pip) SKIP_PIP=1 ;;
    --ort-index) [ $# -ge 2 ] || { echo "install.sh: --ort-index needs a URL" >&2; exit 2; }
                 ORT_INDEX="$2"; shift ;;
    --dev) FORCE_DEV=1 ;;
    --gpu) GPU=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

step() { printf '==> %s\n' "$*"; }
run() { if [ "$DRY_RUN" = 1 ]; then printf '    would run: %s\n' "$*"; else "$@"; fi; }

# ---------------------------------------------------------------------------------------------
# Development machine
# ---------------------------------------------------------------------------------------------

step_python() {
  step "checking Python ($PYTHON)"
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' \
    || { echo "install.sh: Python 3.10+ is required" >&2; exit 1; }
}

step_venv() {
  if [ -x "$VENV/bin/python" ]; then
    step "virtual environment exists: $VENV"
  else
    step "creating virtual environment: $VENV"
    run "$PYTHON" -m venv "$VENV"
  fi
}

step_packages() {
  local extras="$EXTRAS" index=()
  if [ "$GPU" = 1 ]; then
    extras="${EXTRAS/cpu/gpu}"
    index=(--extra-index-url "$TORCH_INDEX")
    # onnxruntime and onnxruntime-gpu install the same module: the CPU one must go first, or the GPU
    # build is shadowed and every session quietly runs on the CPU.
    if "$VENV/bin/python" -m pip show --quiet onnxruntime >/dev/null 2>&1 || [ "$DRY_RUN" = 1 ]; then
      step "removing onnxruntime (CPU) so onnxruntime-gpu is the one imported"
      run "$VENV/bin/python" -m pip uninstall --quiet --yes onnxruntime
    fi
  fi
  step "installing humus with extras [$extras] into $VENV"
  run "$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
  run "$VENV/bin/python" -m pip install --quiet "${index[@]}" -e "$HERE[$extras]"
}

step_check() {
  step "checking the install"
  run "$VENV/bin/humus" --version
}

dev_main() {
  step_python
  step_venv
  step_packages
  step_check
  step "done. Next: $VENV/bin/humus run --sim --record preview.mp4"
}

# ---------------------------------------------------------------------------------------------
# Device (Jetson appliance). On-box layout: systemd/README.md.
# Every path below is "$ROOT/..." so --root DIR lays the same tree into DIR. In --root mode
# nothing that acts on the running host (apt, useradd, udevadm, systemctl, chown) is run:
# the step says what it would have done instead.
# ---------------------------------------------------------------------------------------------

DEV_VENV_REL="opt/humus/venv"
GROUPS_NEEDED="video dialout gpio render"
APT_PACKAGES="python3-venv python3-pip v4l-utils gpiod"
MASK_UNITS="gdm.service gdm3.service lightdm.service getty@tty1.service"
CHANGED_UNITS=0

in_root() { [ "$ROOT_SET" = 1 ]; }
skipped() { printf '    skipped (--root): %s\n' "$*"; }

# install_file SRC DEST MODE: copy when missing or different; say which.
install_file() {
  local src="$1" dest="$2" mode="$3"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    printf '    unchanged: %s\n' "$dest"; return 1
  fi
  if [ "$DRY_RUN" = 1 ]; then printf '    would install: %s -> %s (mode %s)\n' "$src" "$dest" "$mode"; return 0; fi
  install -D -m "$mode" "$src" "$dest.humus-tmp"
  sync "$dest.humus-tmp" 2>/dev/null || true
  mv -f "$dest.humus-tmp" "$dest"          # rename: never a half-written unit or rule
  printf '    installed: %s\n' "$dest"
}

# ensure_link TARGET LINK: what `systemctl enable/mask/set-default` do, for --root trees.
ensure_link() {
  local target="$1" link="$2"
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ]; then
    printf '    unchanged: %s -> %s\n' "$link" "$target"; return
  fi
  if [ "$DRY_RUN" = 1 ]; then printf '    would link: %s -> %s\n' "$link" "$target"; return; fi
  mkdir -p "$(dirname "$link")"
  ln -sfn "$target" "$link"
  printf '    linked: %s -> %s\n' "$link" "$target"
}

step_detect() {
  step "Jetson detected: $(head -n1 "$ROOT/etc/nv_tegra_release" | tr -s ' ' | cut -c1-80)"
  if in_root; then printf '    installing into %s (nothing outside it is touched)\n' "$ROOT"; fi
  if ! in_root && [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: device install needs root: sudo ./install.sh" >&2; exit 1
  fi
}

step_apt() {
  step "system packages: $APT_PACKAGES"
  if in_root; then skipped "apt-get install -y $APT_PACKAGES"; return; fi
  local missing=""
  for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -z "$missing" ]; then printf '    all installed\n'; return; fi
  run apt-get update
  # shellcheck disable=SC2086
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
}

# Add USER to GROUP in an /etc/group-format file (for --root trees), creating the group.
root_group_member() {
  local file="$1" group="$2" user="$3"
  if awk -F: -v g="$group" -v u="$user" '$1==g { n=split($4,m,","); for(i=1;i<=n;i++) if(m[i]==u) f=1 } END { exit !f }' "$file"; then
    printf '    unchanged: %s in group %s\n' "$user" "$group"; return
  fi
  if [ "$DRY_RUN" = 1 ]; then printf '    would add %s to group %s in %s\n' "$user" "$group" "$file"; return; fi
  if ! grep -q "^$group:" "$file"; then
    local gid=999
    while cut -d: -f3 "$file" | grep -qx "$gid"; do gid=$((gid - 1)); done
    printf '%s:x:%s:\n' "$group" "$gid" >> "$file"
  fi
  awk -F: -v OFS=: -v g="$group" -v u="$user" '$1==g { $4 = ($4 == "" ? u : $4 "," u) } { print }' "$file" > "$file.humus-tmp"
  mv -f "$file.humus-tmp" "$file"
  printf '    added %s to group %s in %s\n' "$user" "$group" "$file"
}

step_user() {
  step "user humus in groups: $GROUPS_NEEDED"
  if in_root; then
    local passwd="$ROOT/etc/passwd" group="$ROOT/etc/group"
    if [ "$DRY_RUN" = 0 ]; then mkdir -p "$ROOT/etc"; touch "$passwd" "$group"; fi
    if [ -f "$group" ] && grep -q '^humus:' "$group" 2>/dev/null; then :; else
      if [ "$DRY_RUN" = 1 ]; then printf '    would add group humus to %s\n' "$group"
      else
        local gid=999; while cut -d: -f3 "$group" | grep -qx "$gid"; do gid=$((gid - 1)); done
        printf 'humus:x:%s:\n' "$gid" >> "$group"
      fi
    fi
    if [ -f "$passwd" ] && grep -q '^humus:' "$passwd"; then
      printf '    unchanged: user humus in %s\n' "$passwd"
    elif [ "$DRY_RUN" = 1 ]; then printf '    would add user humus to %s\n' "$passwd"
    else
      local hgid; hgid="$(awk -F: '$1=="humus"{print $3}' "$group")"
      local uid=999; while cut -d: -f3 "$passwd" | grep -qx "$uid"; do uid=$((uid - 1)); done
      printf 'humus:x:%s:%s:humus art installation:/var/lib/humus:/usr/sbin/nologin\n' "$uid" "$hgid" >> "$passwd"
      printf '    added user humus (uid %s) to %s\n' "$uid" "$passwd"
    fi
    for g in $GROUPS_NEEDED; do
      if [ -f "$group" ]; then root_group_member "$group" "$g" humus
      else printf '    would add humus to group %s\n' "$g"; fi
    done
    skipped "useradd/usermod on the host (this step edits $ROOT/etc/passwd and $ROOT/etc/group instead)"
    return
  fi
  for g in $GROUPS_NEEDED; do
    getent group "$g" >/dev/null || run groupadd --system "$g"
  done
  if id humus >/dev/null 2>&1; then printf '    user humus exists\n'
  else run useradd --system --user-group --home-dir /var/lib/humus --no-create-home \
         --shell /usr/sbin/nologin --comment "humus art installation" humus
  fi
  run usermod -aG "$(echo "$GROUPS_NEEDED" | tr ' ' ',')" humus
}

step_dirs() {
  step "directories under ${ROOT:-/}"
  local d
  for d in opt/humus/releases etc/humus/keys var/lib/humus var/cache/humus var/log/journal usr/local/bin; do
    if [ -d "$ROOT/$d" ]; then printf '    exists: %s\n' "$ROOT/$d"
    else run mkdir -p "$ROOT/$d"; fi
  done
  if in_root; then skipped "chown humus: $ROOT/var/lib/humus $ROOT/var/cache/humus"
  else run chown humus:humus /var/lib/humus /var/cache/humus; fi
}

step_device_venv() {
  local venv="$ROOT/$DEV_VENV_REL"
  step "virtual environment with --system-site-packages: $venv"
  if [ -x "$venv/bin/python" ]; then
    printf '    exists\n'
    if ! grep -q '^include-system-site-packages = true' "$venv/pyvenv.cfg"; then
      # JetPack's TensorRT and OpenCV(GStreamer) live in the system Python only.
      run sed -i 's/^include-system-site-packages = .*/include-system-site-packages = true/' "$venv/pyvenv.cfg"
    fi
  elif [ "$SKIP_PIP" = 1 ]; then
    run "$PYTHON" -m venv --system-site-packages --without-pip "$venv"
  else
    run "$PYTHON" -m venv --system-site-packages "$venv"
  fi
}

step_device_pip() {
  local py="$ROOT/$DEV_VENV_REL/bin/python"
  step "Python packages (systemd/requirements-jetson.txt) and onnxruntime-gpu from $ORT_INDEX"
  if [ "$SKIP_PIP" = 1 ]; then printf '    skipped: pip (--no-pip / HUMUS_SKIP_PIP=1)\n'; return; fi
  run "$py" -m pip install --quiet --upgrade pip
  run "$py" -m pip install --quiet -r "$HERE/systemd/requirements-jetson.txt"
  run "$py" -m pip install --quiet --extra-index-url "$ORT_INDEX" onnxruntime-gpu
  if [ "$DRY_RUN" = 0 ]; then
    "$py" -c 'import tensorrt' 2>/dev/null && printf '    tensorrt: ok (system)\n' \
      || printf '    WARNING: tensorrt not importable; is JetPack (nvidia-jetpack) installed?\n'
    "$py" -c 'import cv2' 2>/dev/null && printf '    opencv: ok (system)\n' \
      || printf '    WARNING: cv2 not importable; JetPack ships python3-opencv with GStreamer\n'
  fi
}

step_app() {
  local venv="$ROOT/$DEV_VENV_REL" sp
  step "app: first release under $ROOT/opt/humus and launchers in $venv/bin"
  if [ -x "$venv/bin/python" ]; then
    sp="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  else
    sp="$venv/lib/python$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')/site-packages"
  fi
  local args=(--root "${ROOT:-/}" --src "$HERE" --site-packages "$sp")
  [ "$DRY_RUN" = 1 ] && args+=(--dry-run)
  PYTHONPATH="$HERE" "$PYTHON" -m firmware.appliance.bootstrap "${args[@]}"
  local name
  for name in humus humus-release; do
    ensure_link "/$DEV_VENV_REL/bin/$name" "$ROOT/usr/local/bin/$name"
  done
}

step_config() {
  local example="$HERE/firmware/data/humus.example.toml" dest="$ROOT/etc/humus/humus.toml"
  step "config: $dest"
  if [ ! -f "$example" ]; then printf '    WARNING: %s missing in this checkout; no config installed\n' "$example"; return; fi
  install_file "$example" "$ROOT/etc/humus/humus.example.toml" 0644 || true
  if [ -f "$dest" ]; then
    printf '    kept: %s (an existing config is never overwritten; compare with humus.example.toml)\n' "$dest"
  else
    install_file "$example" "$dest" 0644 || true
  fi
}

step_keys() {
  step "trusted update keys: $ROOT/etc/humus/keys"
  local k
  for k in ${KEYS[@]+"${KEYS[@]}"}; do
    if ! head -n1 "$k" | grep -q '^humus-ed25519 '; then
      echo "install.sh: $k is not a humus public key (make one with: humus-release keygen NAME)" >&2; exit 1
    fi
    install_file "$k" "$ROOT/etc/humus/keys/$(basename "$k")" 0644 || true
  done
  if ! ls "$ROOT"/etc/humus/keys/*.pub >/dev/null 2>&1; then
    printf '    WARNING: no trusted key: `humus update` will refuse every bundle until --key NAME.pub is given\n'
  fi
}

step_udev() {
  step "udev rules: /dev/humus-dmx, /dev/humus-radar, /dev/humus-camera"
  if install_file "$HERE/systemd/udev/99-humus.rules" "$ROOT/etc/udev/rules.d/99-humus.rules" 0644; then
    if in_root; then skipped "udevadm control --reload-rules && udevadm trigger"
    else run udevadm control --reload-rules; run udevadm trigger --subsystem-match=tty \
           --subsystem-match=video4linux --subsystem-match=gpio --subsystem-match=usb-serial; fi
  fi
}

step_units() {
  step "systemd units and journald limits"
  local u
  for u in humus.service humus-safe.service; do
    if install_file "$HERE/systemd/$u" "$ROOT/etc/systemd/system/$u" 0644; then CHANGED_UNITS=1; fi
  done
  if install_file "$HERE/systemd/journald-humus.conf" "$ROOT/etc/systemd/journald.conf.d/humus.conf" 0644; then
    if in_root; then skipped "systemctl restart systemd-journald"; else run systemctl restart systemd-journald; fi
  fi
  if in_root; then
    ensure_link /etc/systemd/system/humus.service "$ROOT/etc/systemd/system/multi-user.target.wants/humus.service"
  else
    [ "$CHANGED_UNITS" = 1 ] && run systemctl daemon-reload
    if systemctl is-enabled --quiet humus.service 2>/dev/null; then printf '    humus.service enabled\n'
    else run systemctl enable humus.service; fi
  fi
}

step_kiosk() {
  step "kiosk: no desktop, no login prompt on the projector (the show draws with SDL kmsdrm)"
  local u
  if in_root; then
    ensure_link /lib/systemd/system/multi-user.target "$ROOT/etc/systemd/system/default.target"
    for u in $MASK_UNITS; do ensure_link /dev/null "$ROOT/etc/systemd/system/$u"; done
  else
    if [ "$(systemctl get-default)" = multi-user.target ]; then printf '    default target: multi-user.target\n'
    else run systemctl set-default multi-user.target; fi
    for u in $MASK_UNITS; do
      if [ "$(systemctl is-enabled "$u" 2>/dev/null || true)" = masked ]; then printf '    masked: %s\n' "$u"
      else run systemctl mask "$u"; fi
    done
  fi
  printf '    hint: add "quiet splash vt.global_cursor_default=0 consoleblank=0" to APPEND in\n'
  printf '          /boot/extlinux/extlinux.conf to hide boot text (not automated: bootloader edits are manual)\n'
}

step_start() {
  step "start the show"
  if in_root; then skipped "systemctl restart humus.service"; return; fi
  if [ "$CHANGED_UNITS" = 1 ]; then run systemctl restart humus.service
  else run systemctl start humus.service; fi
  if [ "$DRY_RUN" = 0 ]; then "/$DEV_VENV_REL/bin/humus" doctor || true; fi
}

device_main() {
  step_detect
  step_apt
  step_user
  step_dirs
  step_device_venv
  step_device_pip
  step_app
  step_config
  step_keys
  step_udev
  step_units
  step_kiosk
  step_start
  step "done. Check with: humus status; humus doctor; humus logs -f"
}

if [ "$FORCE_DEV" = 1 ] && ! in_root; then
  dev_main
elif [ -f "$ROOT/etc/nv_tegra_release" ]; then
  device_main
elif in_root; then
  echo "install.sh: --root $ROOT: no $ROOT/etc/nv_tegra_release; --root installs the Jetson appliance" \
       "layout (create that file to rehearse on another machine)" >&2
  exit 2
else
  dev_main
fi
