#!/usr/bin/env python3
"""Round trip of single control requests, 50 ms apart, so each one meets an idle master
(control.sh sends them back to back). Usage: tests/bench/control_isolated.py BUILD_DIR [N]
Starts `einhorn-cpp -n N -m 0 -- sleep` (N defaults to 100), prints min/p50/p99/max per verb
over 100 requests, stops the master."""
import os, signal, socket, subprocess, sys, tempfile, time

build = sys.argv[1] if len(sys.argv) > 1 else "build-bench"
n = sys.argv[2] if len(sys.argv) > 2 else "100"
tmp = tempfile.mkdtemp(prefix="einhorn-bench-")
sock_path = os.path.join(tmp, "s.sock")
master = subprocess.Popen([os.path.join(build, "einhorn-cpp"), "-q", "-d", sock_path, "-n", n,
                           "-m", "0", "--", "sleep", "100000"], stderr=subprocess.DEVNULL)
try:
    deadline = time.time() + 30
    while not os.path.exists(sock_path) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(2)  # let the workers finish exec'ing
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    f = s.makefile("rb")
    for verb in ("ehlo", "status", "inc", "dec"):
        xs = []
        for _ in range(100):
            time.sleep(0.05)
            t = time.perf_counter()
            s.sendall(b'{"id":1,"command":"%s"}\n' % verb.encode())
            f.readline()
            xs.append((time.perf_counter() - t) * 1e6)
        xs.sort()
        print(f"{verb:6} pool {n}, 100 requests 50 ms apart: min {xs[0]:.0f} us  "
              f"p50 {xs[50]:.0f} us  p99 {xs[98]:.0f} us  max {xs[-1]:.0f} us")
finally:
    master.send_signal(signal.SIGTERM)
    master.wait(timeout=30)
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)
