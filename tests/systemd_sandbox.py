"""Run a workload under the seccomp rules our unit asks systemd for, without systemd.

`SystemCallFilter=`, `RestrictAddressFamilies=` and `MemoryDenyWriteExecute=` are seccomp
filters that systemd installs before exec. A container (or CI) has no systemd to start the
unit, so this module installs equivalent filters with libseccomp (via ctypes) in a child
process, then runs what the agent runs: numpy, OpenCV video encode/decode, an ONNX model
through onnxruntime, SQLite in WAL mode, a pseudo-terminal through pyserial, an MQTT QoS 1
publish over TLS and the sd_notify datagram. A library that needs a forbidden syscall,
socket family or W+X memory fails here the way it would under the unit.

Mirrors systemd 252's src/shared/seccomp-util.c: the allow-list is the expanded syscall
groups (from `systemd-analyze syscall-filter`), everything else returns EPERM
(SystemCallErrorNumber=EPERM); socket() with another family returns EAFNOSUPPORT; mmap
with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect adding PROT_EXEC and shmat with
SHM_EXEC return EPERM.

Usage: python tests/systemd_sandbox.py SPEC.json   (SPEC written by the test)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import socket
import sys
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_LT, SCMP_CMP_EQ, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ = 2, 4, 6, 7
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def scmp_act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class Filter:
    """A thin libseccomp wrapper: one filter context, rules, load."""

    def __init__(self, default_action: int) -> None:
        name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
        self.lib = ctypes.CDLL(name, use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                                    ctypes.POINTER(ScmpArgCmp)]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]
        self.ctx = self.lib.seccomp_init(default_action)
        if not self.ctx:
            raise OSError("seccomp_init failed")

    def syscall(self, name: str) -> int | None:
        nr = self.lib.seccomp_syscall_resolve_name(name.encode())
        return None if nr < 0 else nr

    def rule(self, action: int, name: str, *cmps: tuple[int, int, int, int]) -> bool:
        nr = self.syscall(name)
        if nr is None:
            return False  # not a syscall on this architecture (systemd skips these too)
        arr = (ScmpArgCmp * max(1, len(cmps)))(*[ScmpArgCmp(*c) for c in cmps])
        rc = self.lib.seccomp_rule_add_array(self.ctx, action, nr, len(cmps), arr)
        if rc < 0 and rc != -errno.EEXIST:
            raise OSError(-rc, f"seccomp_rule_add {name}")
        return True

    def load(self) -> None:
        rc = self.lib.seccomp_load(self.ctx)
        if rc < 0:
            raise OSError(-rc, "seccomp_load")


def apply(allowed_syscalls: list[str], families: list[int], mdwe: bool) -> None:
    # Filters stack; the kernel applies the strictest result, as with systemd's separate
    # ones. The allow-list goes last (as systemd does it): it forbids seccomp() itself.
    fam = Filter(SCMP_ACT_ALLOW)
    eafno = scmp_act_errno(errno.EAFNOSUPPORT)
    lo, hi = min(families), max(families)
    fam.rule(eafno, "socket", (0, SCMP_CMP_LT, lo, 0))
    fam.rule(eafno, "socket", (0, SCMP_CMP_GT, hi, 0))
    for f in range(lo + 1, hi):
        if f not in families:
            fam.rule(eafno, "socket", (0, SCMP_CMP_EQ, f, 0))
    fam.load()

    if mdwe:
        wx = Filter(SCMP_ACT_ALLOW)
        eperm = scmp_act_errno(errno.EPERM)
        for name in ("mmap", "mmap2"):
            wx.rule(eperm, name, (2, SCMP_CMP_MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC))
        for name in ("mprotect", "pkey_mprotect"):
            wx.rule(eperm, name, (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        wx.rule(eperm, "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
        wx.load()

    allow = Filter(scmp_act_errno(errno.EPERM))
    for name in allowed_syscalls:
        allow.rule(SCMP_ACT_ALLOW, name)
    allow.load()


def workload(spec: dict) -> dict:
    """What the agent does at run time, imported only after the filters are in place."""
    import os
    import sqlite3
    import tempfile
    import threading

    import cv2
    import numpy as np
    import onnxruntime as ort
    import paho.mqtt.client as mqtt
    import serial
    from onnxruntime.datasets import get_example

    done: dict = {}
    work = Path(tempfile.mkdtemp(dir=spec["tmp"]))

    # ONNX inference with the default CPU provider and a thread pool.
    sess = ort.InferenceSession(get_example("sigmoid.onnx"), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.zeros([d if isinstance(d, int) else 1 for d in inp.shape], dtype=np.float32)
    done["onnx"] = float(sess.run(None, {inp.name: x})[0].ravel()[0])  # sigmoid(0) = 0.5

    # The tracker's numba kernels: compiled (or loaded from the cache) and run, as at start.
    from edge.tracker import Tracker

    tracker = Tracker()
    frame = None
    for k in range(5):
        boxes = np.array([[10 + 4 * k, 10, 40 + 4 * k, 90]], np.float32)
        frame = tracker.update(boxes, np.array([0.9], np.float32), k / 10)
    done["tracker"] = int(len(frame.ids))

    # OpenCV: write a short video, decode it again, resize and convert as a detector would.
    path = str(work / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    cap = cv2.VideoCapture(path)
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        cv2.cvtColor(cv2.resize(frame, (32, 24)), cv2.COLOR_BGR2RGB)
        frames += 1
    done["frames"] = frames

    # SQLite, as the journal opens it.
    db = sqlite3.connect(work / "j.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (x)")
    with db:
        db.execute("INSERT INTO t VALUES (1)")
    done["sqlite"] = db.execute("SELECT count(*) FROM t").fetchone()[0]
    db.close()

    # A serial port: a pseudo-terminal configured through pyserial (termios ioctls).
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), 115200, timeout=1)
    os.write(master, b"ping\n")
    done["serial"] = port.readline().decode().strip()
    port.close()

    # MQTT QoS 1 publish over TLS with a password (name resolution included), paho's
    # network thread; the PUBACK's reason code tells the ACL let it through.
    acked = threading.Event()
    codes: list[int] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sandbox", protocol=mqtt.MQTTv5)
    client.username_pw_set(spec["username"], spec["password"])
    client.tls_set(ca_certs=spec["ca"])
    client.on_publish = lambda c, u, mid, rc, props: (codes.append(rc.value), acked.set())
    client.connect("localhost", spec["port"])
    client.loop_start()
    client.publish(spec["topic"], b"x", qos=1)
    done["mqtt"] = acked.wait(10) and codes[0] < 0x80
    client.loop_stop()
    client.disconnect()

    # The notify socket (AF_UNIX datagram), and a family the unit forbids.
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.send(b"WATCHDOG=1")
    done["notify"] = b.recv(64).decode()
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        done["netlink"] = "allowed"
    except OSError as exc:
        done["netlink"] = errno.errorcode.get(exc.errno, str(exc.errno))
    return done


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    apply(spec["syscalls"], spec["families"], spec["mdwe"])
    # Prove the W+X rule is live before trusting a pass: an anonymous W+X mapping must fail.
    import mmap
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        wx = "allowed"
    except OSError as exc:
        wx = errno.errorcode.get(exc.errno, str(exc.errno))
    # And the syscall allow-list: chown is in @privileged, which the unit takes away.
    try:
        os.chown(spec["tmp"], os.getuid(), os.getgid())
        chown = "allowed"
    except OSError as exc:
        chown = errno.errorcode.get(exc.errno, str(exc.errno))
    result = workload(spec)
    result["wx_mmap"] = wx
    result["chown"] = chown
    print(json.dumps(result))


if __name__ == "__main__":
    main()
