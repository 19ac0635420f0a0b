"""The fleet bench's moving parts besides the devices: two district Mosquitto brokers bridged
(TLS, persistent queue, cleansession false: broker/make-district-bridge.py's configuration)
to a central Mosquitto (the shipped TLS + ACL configuration), a TCP proxy on each bridge link
that the bench cuts and restores, `footfall index run` instances, and a PostgreSQL cluster
of the bench's own (so restarting it disturbs nobody else's tests on the system server).

Each part is a real process or socket; a fault is what an operator would see: SIGKILL, a
link that stops carrying bytes, a `pg_ctl restart`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from simulator.local_broker import SHIPPED_ACL, Broker, free_port, make_test_pki

REPO = Path(__file__).resolve().parent.parent
BRIDGE_SCRIPT = REPO / "broker" / "make-district-bridge.py"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


class LinkProxy:
    """A TCP relay 127.0.0.1:port -> 127.0.0.1:target carrying one district's bridge (TLS
    passes through untouched). `cut()` closes every relayed connection and refuses new ones
    until `restore()`: to the bridge it is a lost network link."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.down = threading.Event()
        self.closed = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self.bytes = 0
        self._listen()

    def _listen(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        threading.Thread(target=self._accept, args=(self.sock,), daemon=True, name="link-proxy").start()

    def _accept(self, sock: socket.socket) -> None:
        while not self.closed.is_set():
            try:
                client, _ = sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True, name="link-pipe").start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                self.bytes += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Drop the link: reset what it carries, refuse new connections (nothing listens)."""
        self.down.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; the port stops listening
        except OSError:
            pass
        self.sock.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, as a lost route
                    s.close()
                except OSError:
                    pass

    def restore(self) -> None:
        if self.down.is_set():
            self.down.clear()
            self._listen()

    def close(self) -> None:
        self.closed.set()
        self.cut()


class PgCluster:
    """A PostgreSQL 15 cluster of the bench's own: initdb into a temp dir, a free port,
    fsync on (the default), trust auth on 127.0.0.1. Run as user postgres when we are root
    (initdb refuses root)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "pgdata"
        self.port = free_port()
        self.log = workdir / "postgresql.log"
        self.as_root = os.geteuid() == 0
        workdir.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(workdir, "postgres")
            os.chmod(workdir, 0o755)
            for parent in list(workdir.parents)[:-1]:  # postgres must reach its data dir
                if parent.stat().st_mode & 0o001 == 0:
                    os.chmod(parent, parent.stat().st_mode | 0o001)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if not (self.dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-instructions", "-E", "UTF8")
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} -c fsync=on -c max_connections=50"
        self._run("pg_ctl", "-D", str(self.dir), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")

    def restart(self, mode: str = "fast") -> float:
        """`pg_ctl restart -m fast|immediate`; returns the seconds it took."""
        t = time.time()
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} -c fsync=on -c max_connections=50"
        self._run("pg_ctl", "-D", str(self.dir), "-l", str(self.log), "-o", opts, "-m", mode, "-w", "-t", "60", "restart")
        return time.time() - t

    def pids(self) -> list[int]:
        """The postmaster and its children (for CPU/RSS)."""
        try:
            head = int((self.dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        kids = subprocess.run(["pgrep", "-P", str(head)], capture_output=True, text=True).stdout.split()
        return [head, *map(int, kids)]

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-m", "immediate", "-w", "stop", check=False)


@dataclass
class Topology:
    """Central broker (shipped TLS config, users for both index instances and both bridges),
    two district brokers (plain listener for the simulated devices, the generated bridge
    section last), a LinkProxy on each bridge."""

    workdir: Path
    districts: tuple[str, ...] = ("district-a", "district-b")
    central: Broker | None = None
    district_brokers: dict[str, Broker] = field(default_factory=dict)
    proxies: dict[str, LinkProxy] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    pki: object = None

    def start(self, restart_timeout: str = "1 5", proxy: bool = True) -> None:
        self.pki = make_test_pki(self.workdir / "pki")
        self.users = {"index": "pw-index-0000", "index-2": "pw-index-2222"}
        self.users.update({f"bridge-{d}": f"pw-bridge-{d}-secret" for d in self.districts})
        self.central = Broker(self.workdir / "central", secure=True, tls=self.pki, users=dict(self.users))
        acl = SHIPPED_ACL.read_text()
        block = acl[acl.index("user index\n"):]
        acl += "\n" + block.replace("user index\n", "user index-2\n", 1)
        self.central.workdir.mkdir(parents=True, exist_ok=True)
        confs = {}
        for d in self.districts:
            pw = self.workdir / f"{d}.password"
            pw.write_text(self.users[f"bridge-{d}"] + "\n")
            out, acl_out = self.workdir / f"{d}-bridge.conf", self.workdir / f"{d}-central-acl"
            self.proxies[d] = link = LinkProxy(0)  # target set once the central's port is known
            subprocess.run([sys.executable, str(BRIDGE_SCRIPT), "--district", d, "--central-host", "localhost",
                            "--central-port", str(link.port if proxy else self.central.port), "--cafile", str(self.pki.ca_cert), "--password-file",
                            str(pw), "--out", str(out), "--acl-out", str(acl_out), "--restart-timeout", restart_timeout],
                           check=True, capture_output=True)
            confs[d] = out.read_text()
            acl += "\n" + acl_out.read_text()
        self.central.acl_path.write_text(acl)
        self.central.start()
        for d in self.districts:
            self.proxies[d].target = self.central.port
            root = "user root\n" if os.geteuid() == 0 else ""
            b = Broker(self.workdir / d, extra_conf=f"allow_anonymous true\n{root}max_queued_messages 1000000\n"
                       f"max_inflight_messages 20\n{confs[d]}")
            b.start()
            self.district_brokers[d] = b

    def password_file(self, user: str) -> Path:
        p = self.workdir / f"{user}.pw"
        p.write_text(self.users[user] + "\n")
        return p

    def kill_district(self, d: str) -> None:
        self.district_brokers[d].stop(kill=True)

    def restart_district(self, d: str) -> None:
        self.district_brokers[d].start()

    def stop(self) -> None:
        for b in [*self.district_brokers.values(), *([self.central] if self.central else [])]:
            try:
                b.stop()
            except subprocess.TimeoutExpired:  # a wedged Mosquitto ignores SIGTERM
                b.stop(kill=True)
        for p in self.proxies.values():
            p.close()


def start_consumer(topo: Topology, db: str, user: str, log: Path, replay_after_s: float = 10.0) -> subprocess.Popen:
    """`footfall index run` on the central broker over TLS as `user`, one shared-subscription group."""
    assert topo.central is not None and topo.pki is not None
    cmd = [sys.executable, "-c", "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))", "index", "run",
           "--db", db, "--host", "localhost", "--port", str(topo.central.port), "--ca-file", str(topo.pki.ca_cert),
           "--username", user, "--password-file", str(topo.password_file(user)), "--group", "index",
           "--replay-after", str(replay_after_s)]
    return subprocess.Popen(cmd, stdout=log.open("a"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def proc_stats(pid: int) -> tuple[float, int]:
    """(user + system CPU seconds so far, RSS bytes) of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
