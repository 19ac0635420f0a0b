#!/usr/bin/env bash
# Part of set-up: the tests and the demo start their own Mosquitto, so the binary must exist.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Mosquitto is missing: installing it with apt-get ..."
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients
  exit 0
fi
echo "Mosquitto is missing. Install it, then run this again:" >&2
echo "    sudo apt-get install mosquitto mosquitto-clients" >&2
exit 1
