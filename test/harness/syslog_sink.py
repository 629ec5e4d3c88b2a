#!/usr/bin/env python3
"""Syslog sink for the interop tests (Cyrus only logs through syslog(3) and
containers often have no syslog daemon).

usage: syslog_sink.py STATE_DIR [SOCKET]      (SOCKET defaults to /dev/log)

Binds SOCKET as a unix datagram socket and appends every datagram as one line
to STATE_DIR/syslog.log.  Only one sink runs at a time (flock on
STATE_DIR/sink.lock; a second one exits 0 at once).  It lives while some lease
in STATE_DIR/leases/ names a live process id, plus a grace period, so
concurrently running test files share it and it never outlives them.
"""
import fcntl, os, signal, socket, sys, time

GRACE_S = 10.0
MAX_S = 6 * 3600

state = sys.argv[1]
sockpath = sys.argv[2] if len(sys.argv) > 2 else "/dev/log"
leases = os.path.join(state, "leases")
os.makedirs(leases, exist_ok=True)

lock = open(os.path.join(state, "sink.lock"), "w")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    sys.exit(0)  # another sink already serves this state dir

if os.path.exists(sockpath):
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(sockpath)
        print(f"{sockpath} is served by another syslog daemon", file=sys.stderr)
        sys.exit(3)
    except OSError:
        os.unlink(sockpath)  # stale socket left by a dead sink
    finally:
        probe.close()

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sockpath)
os.chmod(sockpath, 0o666)
sock.settimeout(0.5)

stop = False


def on_signal(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def live_leases():
    n = 0
    for name in os.listdir(leases):
        try:
            pid = int(name.split("-")[0])
            os.kill(pid, 0)
            n += 1
        except (ValueError, ProcessLookupError):
            try:
                os.unlink(os.path.join(leases, name))
            except OSError:
                pass
        except PermissionError:
            n += 1
    return n


pidfile = os.path.join(state, "sink.pid")
with open(pidfile + ".tmp", "w") as fh:
    fh.write(f"{os.getpid()}\n")
os.rename(pidfile + ".tmp", pidfile)

started = time.time()
last_lease = started
next_check = 0.0
with open(os.path.join(state, "syslog.log"), "wb", buffering=0) as out:
    while not stop and time.time() - started < MAX_S:
        now = time.time()
        if now >= next_check:
            next_check = now + 1.0
            if live_leases() > 0:
                last_lease = now
            elif now - last_lease > GRACE_S:
                break
        try:
            data = sock.recv(65536)
        except (socket.timeout, InterruptedError):
            continue
        stamp = time.strftime("%H:%M:%S").encode()
        out.write(stamp + b" " + data.rstrip(b"\0\n") + b"\n")

for f in (pidfile, sockpath):
    try:
        os.unlink(f)
    except OSError:
        pass
