#!/usr/bin/env python3
"""Preload without the master: tests/zygote/driver.py's master stand-in forks N workers from a
zygote, beside N exec'd copies of the same program, and prints a table. What it measures:
  - time from starting (the zygote, or the first of the N execs) to N workers saying "ready";
  - total PSS (/proc/PID/smaps_rollup) of the N workers once all are ready, and the zygote's;
Apps (tests/bench/apps): python-numpy (einhorn_zygote.serve), ruby-activesupport
(EinhornZygote.serve), ruby-p (einhorn-preload.rb, Einhorn's -p, einhorn_main) and ruby-p-gc
(the same with --gc-before-fork).
Needs python3-numpy and ruby-activesupport (scripts/install-deps bench) and Debian's
/usr/bin/python3. Never asserts on speed; REPS runs (default 3), median (min-max).

Usage: tests/bench/zygote_driver_bench.py [--n 20] [--reps 3] [APP...]
The same figures through einhorn-cpp itself: tests/bench/preload.sh (needs the master side).
"""
import argparse
import os
import select
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "zygote"))
import driver  # noqa: E402  (the master stand-in)

APPS = os.path.join(HERE, "apps")
PYLIB = os.path.join(ROOT, "lib", "python")
RBLIB = os.path.join(ROOT, "lib", "ruby")


def app_argv(app):
    if app == "python-numpy":
        return ["/usr/bin/python3", os.path.join(APPS, "preload_numpy.py")], {"PYTHONPATH": PYLIB}
    if app == "ruby-activesupport":
        return ["ruby", "-I" + RBLIB, os.path.join(APPS, "preload_activesupport.rb")], {}
    if app in ("ruby-p", "ruby-p-gc"):
        script = os.path.join(APPS, "preload_activesupport.rb")
        gc = ["--gc-before-fork"] if app == "ruby-p-gc" else []
        return (["ruby", os.path.join(RBLIB, "einhorn-preload.rb"), "--verbosity", "2"] + gc +
                [script, "--", "ruby", "-I" + RBLIB, script], {"RUBYLIB": RBLIB})
    raise SystemExit("unknown app %s" % app)


def pss_kb(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def wait_lines(fds, deadline):
    """Until each fd gave a 'ready' line; returns the time the last one came."""
    pending = set(fds)
    bufs = {fd: b"" for fd in fds}
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit("bench: only %d of %d workers ready in time" %
                             (len(fds) - len(pending), len(fds)))
        r, _, _ = select.select(list(pending), [], [], left)
        for fd in r:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise SystemExit("bench: a worker died before ready")
            bufs[fd] += chunk
            if b"ready\n" in bufs[fd]:
                pending.discard(fd)
    return time.monotonic()


def run_exec(app, n):
    argv, extra = app_argv(app)
    if app.startswith("ruby-p"):  # exec mode of -p is the plain command
        argv = argv[argv.index("--") + 1:]
    env = dict(os.environ, **extra)
    env.pop("EINHORN_ZYGOTE_FD", None)
    t0 = time.monotonic()
    procs = [subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=APPS) for _ in range(n)]
    t1 = wait_lines([p.stdout.fileno() for p in procs], t0 + 300)
    pss = sum(pss_kb(p.pid) for p in procs)
    for p in procs:
        p.stdin.close()
    for p in procs:
        p.wait()
    return t1 - t0, pss, 0, None


def run_zygote(app, n):
    argv, extra = app_argv(app)
    env = dict(os.environ, **extra)
    t0 = time.monotonic()
    z = driver.Zygote(argv, env)
    workers = []
    try:
        msg = z.recv(300)
        if not isinstance(msg, dict) or not msg.get("ready"):
            raise SystemExit("bench: zygote not ready: %r" % (msg,))
        loaded = time.monotonic() - t0
        for i in range(n):
            w = driver.Worker()
            wenv = dict(env, EINHORN_CHILD_INDEX=str(i))
            for k in ("EINHORN_SOCK_PATH", "EINHORN_MASTER_PID"):
                wenv.pop(k, None)
            _, reply = z.spawn(wenv, w.fds())
            w.close_sent()
            if not isinstance(reply, dict) or "pid" not in reply:
                raise SystemExit("bench: spawn failed: %r" % (reply,))
            w.pid = reply["pid"]
            workers.append(w)
        t1 = wait_lines([w.out_r for w in workers], t0 + 300)
        pss = sum(pss_kb(w.pid) for w in workers)
        zpss = pss_kb(z.proc.pid)
        return t1 - t0, pss, zpss, loaded
    finally:
        z.kill()
        for w in workers:
            w.finish()


def fmt(values, f):
    med = statistics.median(values)
    if len(values) == 1:
        return f % med
    return (f + " (" + f + "-" + f + ")") % (med, min(values), max(values))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--reps", type=int, default=int(os.environ.get("REPS", "3")))
    ap.add_argument("apps", nargs="*", default=["python-numpy", "ruby-activesupport", "ruby-p",
                                                        "ruby-p-gc"])
    a = ap.parse_args()
    driver.become_subreaper()
    print("| app | mode | %d ready after (s) | of which the zygote's load (s) | workers' total PSS "
          "(MB) | zygote PSS (MB) |" % a.n)
    print("|---|---|---|---|---|---|")
    for app in a.apps:
        res = {}
        for mode, fn in (("exec", run_exec), ("zygote", run_zygote)):
            times, psss, zs, loads = [], [], [], []
            for _ in range(a.reps):
                t, p, z, load = fn(app, a.n)
                times.append(t)
                if load is not None:
                    loads.append(load)
                psss.append(p / 1024)
                zs.append(z / 1024)
            res[mode] = (statistics.median(times), statistics.median(psss))
            print("| %s | %s | %s | %s | %s | %s |" % (app, mode, fmt(times, "%.2f"),
                                                  fmt(loads, "%.2f") if loads else "-",
                                                  fmt(psss, "%.1f"),
                                                  fmt(zs, "%.1f") if mode == "zygote" else "-"),
                  flush=True)
        print("| %s | zygote/exec | ready %.1fx sooner | | PSS %.0f %% of exec | |" % (
            app, res["exec"][0] / res["zygote"][0], 100 * res["zygote"][1] / res["exec"][1]),
            flush=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
