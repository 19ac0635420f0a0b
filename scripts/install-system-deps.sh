#!/usr/bin/env bash
# The ONE list of system packages the tests and the demo use; `make test`, `make demo` and
# CI (.ci/run -> make test) all come through here. Root: apt-get installs what is missing.
# Otherwise: a clear message naming the packages, and a non-zero exit.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have mosquitto || need+=(mosquitto)
have mosquitto_passwd || need+=(mosquitto)
have mosquitto_sub || need+=(mosquitto-clients)
have openssl || need+=(openssl)
have systemd-analyze || need+=(systemd)        # tests/test_systemd_unit.py verifies the unit
have gcc || need+=(gcc)                          # tests/test_firmware_vectors.py builds the C parser
have make || need+=(make)
have pg_isready || need+=(postgresql)           # tests/test_store_postgres.py, test_consumers_shared.py, test_fleet.py: 127.0.0.1:5432, db `test`, trust
have chromium || need+=(chromium)                # tests/test_web_page.py: the page in headless Chromium
[ -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || need+=(opencv-doc)  # real pedestrian footage (camera tests)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
  exit 0
fi
echo "Missing system packages: ${need[*]}" >&2
echo "Install them, then run this again:" >&2
echo "    sudo apt-get install ${need[*]}" >&2
exit 1
