"""A worker for tests/zygote/driver.py: einhorn_zygote.serve() with a load step; each worker
writes one JSON line about itself to its stdout, then waits for EOF on its stdin."""
import json
import os
import random
import subprocess
import sys

import einhorn_zygote


def load():
    random.random()  # the zygote's RNG has moved: the workers must not all repeat it
    if "fail-load" in sys.argv[1:]:
        raise RuntimeError("failing to load on purpose")
    if "dirty" in sys.argv[1:]:  # what an application may do while loading
        import signal
        signal.signal(signal.SIGUSR2, lambda *_: None)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGTERM])
        random.seed(42)
    if "term-handler" in sys.argv[1:]:
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # serve() must still die on SIGTERM


def fd_id(fd):
    try:
        st = os.fstat(fd)
        return [st.st_dev, st.st_ino]
    except OSError:
        return None


def main():
    extra = [int(x) for x in os.environ.get("TEST_EXTRA_FDS", "").split()]
    child_env = subprocess.run(["/usr/bin/env", "-0"], stdout=subprocess.PIPE,
                               check=True).stdout.decode().split("\0")
    report = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "pgid": os.getpgid(0),
        "env": dict(os.environ),
        "child_env": dict(kv.split("=", 1) for kv in child_env if kv),
        "fds": {str(fd): fd_id(fd) for fd in [0, 1, 2] + extra},
        "random": random.getrandbits(64),
        "signals": dict(l.split(":\t")[0:2] for l in open("/proc/self/status").read().splitlines()
                        if l.startswith(("SigIgn", "SigCgt", "SigBlk"))),
        "argv": sys.argv,
    }
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the driver closes our stdin
    return 0


if __name__ == "__main__":
    sys.exit(einhorn_zygote.serve(main, load=load))
