"""Bench worker (tests/bench/preload.sh, zygote_driver_bench.py): imports numpy (the load),
then says ready: a manual ack to the master when EINHORN_SOCK_PATH is set, else "ready" on
stdout; then idles until stdin closes (or forever under the master)."""
import json
import os
import socket
import sys

import einhorn_zygote


def load():
    global np
    import numpy as np
    np.dot(np.ones((64, 64)), np.ones((64, 64)))  # touch BLAS, as an application would


def ready():
    path = os.environ.get("EINHORN_SOCK_PATH")
    if path and os.environ.get("EINHORN_MASTER_PID"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.sendall((json.dumps({"command": "worker:ack", "pid": os.getpid()}) + "\n").encode())
        s.close()
    else:
        sys.stdout.write("ready\n")
        sys.stdout.flush()


def main():
    a = np.arange(1000.0)  # a little work of its own
    assert a.sum() > 0
    ready()
    if os.environ.get("EINHORN_MASTER_PID"):
        while True:
            os.pause() if hasattr(os, "pause") else __import__("time").sleep(3600)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(einhorn_zygote.serve(main, load=load))
