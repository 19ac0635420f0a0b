#!/usr/bin/env bash
# Give one footfall device its broker credentials.
#
#   broker/add-device.sh DEVICE_ID [--passwd FILE] [--acl FILE] [--rotate]
#                        [--password-stdin] [--reload]
#
# DEVICE_ID   the device's id, exactly as in its agent.toml ([device] id). It becomes the
#             MQTT username; the ACL (broker/acl) lets that username write only under
#             footfall/v1/<site>/<DEVICE_ID>/. Allowed characters: A-Z a-z 0-9 . _ -
#             (1 to 64, starting with a letter or digit).
# --passwd    Mosquitto password file (default /etc/mosquitto/footfall.passwd; created
#             when missing: mode 0640 group mosquitto when run as root and that group
#             exists, else 0600).
# --acl       the installed ACL (default /etc/mosquitto/footfall.acl). It is only read:
#             devices need no per-user lines because the ACL's
#             `pattern write footfall/v1/+/%u/#` covers every device. The script checks
#             that line is there, and refuses ids that the ACL names in a `user` block
#             (e.g. `index`): those are consumers, not devices.
# --rotate    the device exists already: give it a new password (the old one stops
#             working when the broker reloads).
# --password-stdin
#             read the password from the first line of stdin instead of generating one.
# --reload    run `systemctl reload mosquitto` afterwards (SIGHUP: the broker re-reads the
#             password file without dropping connections). Without it, reload yourself.
#
# A generated password (32 characters from /dev/urandom, ~192 bits) is printed once, alone
# on stdout; put it in the device's agent.toml and do not keep other copies. Messages go to
# stderr. The password never appears on a command line (it is piped to mosquitto_passwd).
#
# Idempotent: running it again for an existing device changes nothing (exit 0) unless
# --rotate or --password-stdin is given.
#
# Exit codes: 0 done or nothing to do, 1 bad usage or input, 2 missing tool or file.
set -euo pipefail

die() { echo "add-device: $1" >&2; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; }

passwd_file=/etc/mosquitto/footfall.passwd
acl_file=/etc/mosquitto/footfall.acl
rotate=0
from_stdin=0
reload=0
device=""

while [ $# -gt 0 ]; do
  case "$1" in
    --passwd) [ $# -ge 2 ] || die "--passwd needs a file"; passwd_file=$2; shift 2 ;;
    --acl) [ $# -ge 2 ] || die "--acl needs a file"; acl_file=$2; shift 2 ;;
    --rotate) rotate=1; shift ;;
    --password-stdin) from_stdin=1; shift ;;
    --reload) reload=1; shift ;;
    -h|--help) usage ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$device" ] || die "only one DEVICE_ID, got '$device' and '$1'"; device=$1; shift ;;
  esac
done

[ -n "$device" ] || die "missing DEVICE_ID (see --help)"
if ! [[ "$device" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
  die "bad device id '$device': use 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit (MQTT wildcards + # and / would break the ACL)"
fi

command -v mosquitto_passwd >/dev/null 2>&1 \
  || die "mosquitto_passwd not found: install it (Debian/Ubuntu: apt-get install mosquitto)" 2

[ -r "$acl_file" ] || die "ACL file $acl_file not readable: install broker/acl there, or pass --acl FILE" 2
if ! grep -Eq '^[[:space:]]*pattern[[:space:]]+(write|readwrite)[[:space:]]+footfall/v1/\+/%u/#[[:space:]]*$' "$acl_file"; then
  die "$acl_file lacks 'pattern write footfall/v1/+/%u/#': the device could not publish; install broker/acl" 2
fi
if grep -Eq "^[[:space:]]*user[[:space:]]+${device//./\\.}[[:space:]]*$" "$acl_file"; then
  die "'$device' is a consumer in $acl_file (it has a 'user' block), not a device: pick another id"
fi

exists=0
if [ -e "$passwd_file" ]; then
  if [ ! -r "$passwd_file" ] || [ ! -w "$passwd_file" ]; then
    die "password file $passwd_file is not readable and writable by $(id -un)" 2
  fi
  grep -q "^${device//./\\.}:" "$passwd_file" && exists=1
fi

if [ "$exists" = 1 ] && [ "$rotate" = 0 ] && [ "$from_stdin" = 0 ]; then
  echo "add-device: '$device' already has credentials in $passwd_file; nothing changed (use --rotate for a new password)" >&2
  exit 0
fi

if [ "$from_stdin" = 1 ]; then
  IFS= read -r password || true
  [ ${#password} -ge 12 ] || die "password from stdin is shorter than 12 characters"
  generated=0
else
  # 24 random bytes -> 32 URL-safe base64 characters.
  password=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
  generated=1
fi

if [ ! -e "$passwd_file" ]; then
  (umask 077; : > "$passwd_file")
  # Mosquitto (user mosquitto) must read it; only root can hand it to that group.
  if [ "$(id -u)" = 0 ] && getent group mosquitto >/dev/null 2>&1; then
    chgrp mosquitto "$passwd_file" && chmod 0640 "$passwd_file"
  fi
fi

# mosquitto_passwd prompts twice; piping keeps the password out of `ps` and shell history.
printf '%s\n%s\n' "$password" "$password" | mosquitto_passwd "$passwd_file" "$device" >/dev/null \
  || die "mosquitto_passwd failed for $passwd_file" 2

if [ "$exists" = 1 ]; then action="new password set"; else action="added"; fi
echo "add-device: '$device' $action in $passwd_file; it may publish under footfall/v1/<site>/$device/" >&2
if [ "$generated" = 1 ]; then
  echo "add-device: its password is printed below, once. Put it in the device's /etc/footfall/agent.toml ([mqtt] password)." >&2
  printf '%s\n' "$password"
fi

if [ "$reload" = 1 ]; then
  systemctl reload mosquitto || die "systemctl reload mosquitto failed: reload the broker yourself (SIGHUP)" 2
  echo "add-device: broker reloaded" >&2
else
  echo "add-device: now run 'systemctl reload mosquitto' so the broker sees the change" >&2
fi
