#!/usr/bin/env bash
# Set up a fresh Debian 12 machine (as root) for regress. Idempotent: every step
# checks first and says what it did. Installs: bcc + bpftrace (tracing), qemu +
# debootstrap + busybox (VM runner), chromium (report screenshot tests), gcc-12 +
# make (the selftest's fault modules), kernel
# headers when the running kernel has none; the package itself into .venv with
# the system's bcc module made importable.
set -euo pipefail

cd "$(dirname "$0")/.."
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get, tracefs and BPF need it)"
command -v apt-get >/dev/null || die "apt-get not found: regress's setup targets Debian 12"

APT_PACKAGES=(
  python3-bpfcc bpfcc-tools bpftrace          # tracer (bcc) and the independent cross-check
  qemu-system-x86 qemu-utils                  # VM runner
  debootstrap busybox-static cpio kmod e2fsprogs dpkg-dev  # guest image, initramfs, module deps
  util-linux procps python3-venv              # unshare/nsenter, ps, venv for a system python
  chromium                                    # headless screenshot test of the HTML report
  gcc-12 make                                 # selftest's fault modules, built against cached headers
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# The running kernel has no headers (custom builds often do not): install a
# Debian headers tree; regress points bcc at it (see README, "Kernel headers").
headers_pkg=""
if [ ! -e "/lib/modules/$(uname -r)/build" ] && [ -z "${REGRESS_KERNEL_HEADERS:-}" ] \
   && ! compgen -G "/usr/src/linux-headers-*-amd64" >/dev/null; then
  headers_pkg=pending
fi

if [ ${#missing[@]} -gt 0 ] || [ -n "$headers_pkg" ]; then
  say "apt-get update"
  apt-get update -qq
  if [ -n "$headers_pkg" ]; then
    headers_pkg=$(apt-cache --names-only search '^linux-headers-6\.1\.0-[0-9]+-cloud-amd64$' \
      | awk '{print $1}' | sort -t- -k4,4n | tail -n 1)
    [ -n "$headers_pkg" ] || die "no linux-headers-6.1.0-*-cloud-amd64 package found in apt"
    missing+=("$headers_pkg")
    say "running kernel $(uname -r) has no headers: installing $headers_pkg for bcc"
  fi
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "apt packages present"
fi

# Python: 3.11+ with venv.
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$PY is older than 3.11 (set PYTHON=/path/to/python3.11)"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.regress-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing regress and its dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
else
  say ".venv up to date"
fi

# bcc lives in Debian's dist-packages; expose only that module to the venv.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -e "$site/bcc" ]; then
  ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
  say "linked bcc into $site"
fi
.venv/bin/python -c 'import bcc' 2>/dev/null || die "bcc is not importable from .venv"

# tracefs/debugfs (not mounted at boot on some machines).
if [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing && say "mounted tracefs on /sys/kernel/tracing"
fi
if ! mountpoint -q /sys/kernel/debug; then
  mount -t debugfs nodev /sys/kernel/debug 2>/dev/null && say "mounted debugfs on /sys/kernel/debug" || true
fi

say "ready: .venv/bin/regress --help"
