"""systemd's notify protocol (READY=1, WATCHDOG=1, STATUS=...): a datagram to
$NOTIFY_SOCKET. A dozen lines, so written here rather than depending on an unmaintained
package; a no-op outside systemd."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one notification; returns False when not running under systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)  # a listener that is not reading must never stall the loop
        try:
            sock.connect(addr)
            sock.sendall(message.encode())
        except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
            return False
    return True
