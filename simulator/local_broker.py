"""A real Mosquitto on this machine, started from a generated config on a free port.

The simulator's stand-in for a center's broker: the demo and the tests start one (plain, or
the shipped broker/mosquitto.conf + ACL with TLS).

Two modes:
- plain (default): one anonymous listener on 127.0.0.1, for tests of the data path;
- secure (`Broker(..., secure=True)`): the shipped `broker/mosquitto.conf` and
  `broker/acl`, with only paths and the port rewritten, TLS from a throwaway CA made with
  openssl, and a password file built with mosquitto_passwd. Tests in this mode prove the
  files we ship, not a look-alike config.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONF = REPO_ROOT / "broker" / "mosquitto.conf"
SHIPPED_ACL = REPO_ROOT / "broker" / "acl"
# Credentials the `secure_broker` fixture starts with: two devices and the index consumer.
SECURE_USERS = {"dev-a": "pw-dev-a", "dev-b": "pw-dev-b", "index": "pw-index"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if not found:
        raise RuntimeError("mosquitto is not installed: run `make mosquitto` (apt-get install mosquitto)")
    return found


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: apt-get install {package}")
    return found


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway PKI: a CA and a server certificate for localhost/127.0.0.1."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def make_test_pki(directory: Path, days: int = 2) -> TlsFiles:
    """Make a CA and a server cert with openssl (EC P-256: fast to generate), the same
    steps broker/README.md gives for a site, with a 2-day lifetime."""
    openssl = _tool("openssl", "openssl")
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.crt", directory / "ca.key", directory / "server.crt", directory / "server.key")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", str(files.ca_key), "-out", str(files.ca_cert),
        "-days", str(days), "-subj", "/CN=footfall test CA")
    csr = directory / "server.csr"
    run("req", *ec, "-keyout", str(files.server_key), "-out", str(csr), "-subj", "/CN=localhost")
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(files.ca_cert), "-CAkey", str(files.ca_key),
        "-CAcreateserial", "-out", str(files.server_cert), "-days", str(days), "-extfile", str(ext))
    return files


def set_password(passwd_file: Path, username: str, password: str) -> None:
    """Add or replace one user in a Mosquitto password file (hashed by mosquitto_passwd)."""
    tool = _tool("mosquitto_passwd", "mosquitto")
    args = [tool, "-b"] + ([] if passwd_file.exists() else ["-c"]) + [str(passwd_file), username, password]
    subprocess.run(args, check=True, capture_output=True)


def render_shipped_config(*, port: int, tls: TlsFiles, password_file: Path, acl_file: Path, workdir: Path,
                          persistence: bool = True, source: Path = SHIPPED_CONF) -> str:
    """The shipped broker config with only machine-specific values replaced: file paths,
    the listener port (bound to 127.0.0.1), syslog dropped. Every replaced directive must be
    present exactly once, so a change to the shipped file that a test would silently stop
    covering fails here instead."""
    text = source.read_text()
    replacements = {
        r"listener 8883": f"listener {port} 127.0.0.1",
        r"cafile .*": f"cafile {tls.ca_cert}",
        r"certfile .*": f"certfile {tls.server_cert}",
        r"keyfile .*": f"keyfile {tls.server_key}",
        r"password_file .*": f"password_file {password_file}",
        r"acl_file .*": f"acl_file {acl_file}",
        r"persistence_location .*": f"persistence_location {workdir}/",
        r"log_dest file .*": f"log_dest file {workdir}/mosquitto.log",
        r"log_dest syslog": "",
        r"persistence true": f"persistence {'true' if persistence else 'false'}",
    }
    for pattern, new in replacements.items():
        text, n = re.subn(rf"(?m)^{pattern}$", new, text)
        if n != 1:
            raise AssertionError(f"{source}: expected exactly one line matching {pattern!r}, found {n}")
    if os.geteuid() == 0:
        # As root Mosquitto drops to user `mosquitto`, which cannot read pytest's 0700 tmp
        # dirs. In production the key is made readable by group mosquitto (README).
        text += "\nuser root\n"
    return text


@dataclass
class Broker:
    """One Mosquitto process. `stop(kill=True)` SIGKILLs it; `start()` brings it back on
    the same port with the same persistence file.

    With `secure=True` it runs the shipped TLS + password + ACL configuration; `users`
    (username -> password) are written to its password file before start, and
    `add_user()` + `reload()` change them while it runs."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_conf: str = ""
    persistence: bool = True
    proc: subprocess.Popen | None = None
    secure: bool = False
    users: dict[str, str] = field(default_factory=dict)
    tls: TlsFiles | None = None

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def passwd_path(self) -> Path:
        return self.workdir / "passwd"

    @property
    def acl_path(self) -> Path:
        return self.workdir / "acl"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.secure:
            self._write_secure_config()
            return
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true" if not self.extra_conf else "",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.workdir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
            self.extra_conf,
        ]
        self.conf_path.write_text("\n".join(line for line in lines if line) + "\n")

    def _write_secure_config(self) -> None:
        if self.tls is None:
            self.tls = make_test_pki(self.workdir / "pki")
        if not self.acl_path.exists():
            shutil.copyfile(SHIPPED_ACL, self.acl_path)
        for user, password in self.users.items():
            set_password(self.passwd_path, user, password)
        self.users = {}
        if not self.passwd_path.exists():
            self.passwd_path.write_text("")
        text = render_shipped_config(port=self.port, tls=self.tls, password_file=self.passwd_path,
                                     acl_file=self.acl_path, workdir=self.workdir, persistence=self.persistence)
        self.conf_path.write_text(text + ("\n" + self.extra_conf + "\n" if self.extra_conf else ""))

    def add_user(self, username: str, password: str) -> None:
        """Add or change a user's password; call `reload()` for a running broker to see it."""
        set_password(self.passwd_path, username, password)

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password file and ACL, keeping connections."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def start(self, timeout: float = 10.0) -> None:
        self.write_config()
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = self.log_path
                raise RuntimeError(f"mosquitto exited: {err}\n{log.read_text() if log.exists() else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None
