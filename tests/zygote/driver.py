#!/usr/bin/env python3
"""Plays einhorn-cpp's master against a zygote library (protocol v1, man/einhorn-zygote.7),
without the master: a SOCK_SEQPACKET socketpair, the zygote started with EINHORN_ZYGOTE_FD,
spawn requests with three fds and an environment, and checks on the workers it forks.

Usage: tests/zygote/driver.py python|ruby|preload|compare [--reference DIR]
  python   lib/python/einhorn_zygote.py (tests/zygote/apps/report_app.py)
  ruby     lib/ruby/einhorn_zygote.rb (tests/zygote/apps/report_app.rb)
  preload  lib/ruby/einhorn-preload.rb, Einhorn's -p (tests/zygote/apps/preload_app.rb)
  compare  einhorn-preload.rb beside Ruby Einhorn 1.1.1's -p on the same app: the log lines,
           $0, ARGV and the environment's names (exit 77, skipped, without the reference)
Each check prints one line; the exit code is 1 if any failed.
"""
import array
import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APPS = os.path.join(ROOT, "tests", "zygote", "apps")
PYLIB = os.path.join(ROOT, "lib", "python")
RBLIB = os.path.join(ROOT, "lib", "ruby")
PR_SET_CHILD_SUBREAPER = 36
DEADLINE = 20.0

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    return {"state": fields[0], "ppid": int(fields[1]), "pgrp": int(fields[2])}


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def sig_bit(mask_hex, sig):
    return (int(mask_hex, 16) >> (sig - 1)) & 1


class Zygote:
    """A zygote process under test, and the master's end of its socket."""

    def __init__(self, argv, env, extra_fds=()):
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock_ino = os.fstat(child.fileno()).st_ino
        env = dict(env)
        env["EINHORN_ZYGOTE_FD"] = str(child.fileno())
        self.proc = subprocess.Popen(argv, env=env, pass_fds=(child.fileno(),) + tuple(extra_fds),
                                     process_group=0, cwd=APPS)
        child.close()
        self.next_id = 1
        self.workers = []

    def recv(self, timeout=DEADLINE):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return "timeout"
        try:
            data = self.sock.recv(65537)
        except ConnectionResetError:
            return None
        if not data:
            return None
        return json.loads(data)

    def spawn(self, env, fds, self_pid_vars=("LISTEN_PID",), raw=None):
        rid = self.next_id
        self.next_id += 1
        msg = raw if raw is not None else {"spawn": rid, "env": env,
                                           "self_pid_vars": list(self_pid_vars)}
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.sock.sendmsg([json.dumps(msg).encode()], anc)
        return rid, self.recv()

    def wait_exit(self, timeout=DEADLINE):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return "timeout"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


class Worker:
    """The three pipes the driver hands a worker as its stdin, stdout and stderr."""

    def __init__(self):
        self.in_r, self.in_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        self.pid = None
        self.sent_ids = [[os.fstat(fd).st_dev, os.fstat(fd).st_ino] for fd in self.fds()]

    def fds(self):
        return [self.in_r, self.out_w, self.err_w]

    def ids(self):
        return self.sent_ids

    def close_sent(self):
        for fd in (self.in_r, self.out_w, self.err_w):
            os.close(fd)

    def report(self, timeout=DEADLINE):
        data = b""
        end = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            r, _, _ = select.select([self.out_r], [], [], max(0, end - time.monotonic()))
            if not r:
                return None
            chunk = os.read(self.out_r, 65536)
            if not chunk:
                return None
            data += chunk
        return json.loads(data)

    def stderr_text(self):
        os.set_blocking(self.err_r, False)
        try:
            return os.read(self.err_r, 65536).decode(errors="replace")
        except BlockingIOError:
            return ""

    def finish(self):
        """Ends the worker (EOF on its stdin, then SIGKILL) and reaps it: the driver's child."""
        for fd in (self.in_w,):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.pid:
            end = time.monotonic() + 5
            while time.monotonic() < end:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    return
                time.sleep(0.02)
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def worker_env(extra=None):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "EINHORN_CHILD_INDEX": "0",
           "EINHORN_MASTER_PID": str(os.getpid()), "SPACES": "a b  c", "EQUALS": "x=y=z",
           "NEWLINE": "line1\nline2", "UNICODE": "\u00e9t\u00e9", "EMPTY": ""}
    env.update(extra or {})
    return env


def library_scenarios(lang):
    if lang == "python":
        argv = [sys.executable, "report_app.py"]
        zenv = {"PATH": os.environ["PATH"], "PYTHONPATH": PYLIB, "ZYGOTE_ONLY": "1"}
    else:
        argv = ["ruby", "-I" + RBLIB, "report_app.rb"]
        zenv = {"PATH": os.environ["PATH"], "ZYGOTE_ONLY": "1"}
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    lfd = listener.fileno()
    os.set_inheritable(lfd, True)

    # Exec'd, without EINHORN_ZYGOTE_FD: serve() runs main() at once.
    p = subprocess.run(argv, env=dict(zenv, TEST_EXTRA_FDS=""), cwd=APPS, input=b"",
                       stdout=subprocess.PIPE, timeout=DEADLINE)
    rep = json.loads(p.stdout.splitlines()[0]) if p.stdout else {}
    exec_signals = rep.get("signals")
    check(p.returncode == 0 and rep.get("pid") and rep.get("ppid") == os.getpid(),
          "%s: without EINHORN_ZYGOTE_FD serve() runs the worker in place (rc %s)" %
          (lang, p.returncode))

    # "dirty": the application traps, ignores and (Python) blocks signals and seeds the RNG
    # while loading; none of it may reach a worker.
    z = Zygote(argv + ["dirty"], dict(zenv, TEST_EXTRA_FDS=str(lfd)), extra_fds=(lfd,))
    workers = []
    try:
        msg = z.recv()
        check(msg == {"ready": True}, "%s: the zygote says ready (got %r)" % (lang, msg))

        reports = []
        for i in range(2):
            w = Worker()
            workers.append(w)
            env = worker_env({"EINHORN_CHILD_INDEX": str(i), "TEST_EXTRA_FDS": str(lfd)})
            rid, reply = z.spawn(env, w.fds())
            w.close_sent()
            ok = check(isinstance(reply, dict) and reply.get("spawned") == rid
                       and isinstance(reply.get("pid"), int),
                       "%s: spawn %d answered with spawned and a pid (got %r)" % (lang, rid, reply))
            if not ok:
                return
            w.pid = reply["pid"]
            st = proc_stat(w.pid)
            check(st["ppid"] == os.getpid(),
                  "%s: worker %d is the driver's child when 'spawned' arrives (ppid %d, driver %d,"
                  " zygote %d)" % (lang, w.pid, st["ppid"], os.getpid(), z.proc.pid))
            check(w.pid != z.proc.pid, "%s: the worker is not the zygote" % lang)
            rep = w.report()
            if not check(rep is not None, "%s: worker %d reports (stderr: %s)" %
                         (lang, w.pid, w.stderr_text()[-800:])):
                return
            reports.append(rep)
            expected = dict(env, LISTEN_PID=str(w.pid))
            check(rep["pid"] == w.pid, "%s: the reported pid is the worker's" % lang)
            check(rep["ppid"] == os.getpid(),
                  "%s: the worker's own getppid() is the master (no code runs before the "
                  "reparenting)" % lang)
            check(rep["env"] == expected, "%s: the worker's environment is exactly the one sent, "
                  "LISTEN_PID its own pid (diff: %r)" % (lang, sorted(
                      set(rep["env"].items()) ^ set(expected.items()))))
            check(rep["child_env"] == expected,
                  "%s: a program the worker runs sees that environment too" % lang)
            check(rep["fds"]["0"] == w.ids()[0] and rep["fds"]["1"] == w.ids()[1]
                  and rep["fds"]["2"] == w.ids()[2],
                  "%s: fds 0, 1, 2 are the three sent" % lang)
            lst = os.fstat(lfd)
            check(rep["fds"][str(lfd)] == [lst.st_dev, lst.st_ino],
                  "%s: the listen fd stays at its number %d" % (lang, lfd))
            check(rep["pgid"] == w.pid and st["pgrp"] == w.pid,
                  "%s: the worker leads its own process group" % lang)
            status = proc_status(w.pid)
            check(int(status["SigBlk"], 16) == 0,
                  "%s: empty signal mask (SigBlk %s)" % (lang, status["SigBlk"]))
            ign = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2, signal.SIGHUP,
                               signal.SIGQUIT, signal.SIGUSR1, signal.SIGCHLD)
                   if sig_bit(status["SigIgn"], s)]
            check(not ign, "%s: INT, TERM, USR2, HUP, QUIT, USR1, CHLD not ignored (SigIgn %s)" %
                  (lang, status["SigIgn"]))
            check(rep["signals"] == exec_signals,
                  "%s: the dispositions of the same program exec'd: %r (exec'd: %r)" %
                  (lang, rep["signals"], exec_signals))
            fds = os.listdir("/proc/%d/fd" % w.pid)
            socks = set()
            for fd in fds:
                try:
                    socks.add(os.readlink("/proc/%d/fd/%s" % (w.pid, fd)))
                except OSError:
                    pass
            check("socket:[%d]" % z.sock_ino not in socks,
                  "%s: the zygote socket is closed in the worker" % lang)
        check(reports[0]["random"] != reports[1]["random"],
              "%s: two workers draw different random numbers" % lang)

        # A request with two fds fails, and the zygote goes on serving.
        w = Worker()
        rid, reply = z.spawn(worker_env(), w.fds()[:2])
        w.close_sent()
        check(isinstance(reply, dict) and reply.get("failed") == rid and reply.get("error"),
              "%s: a request with 2 fds is answered 'failed' (got %r)" % (lang, reply))
        # A bad environment (a number, a name with '=') fails that request only.
        for bad_env in ({"A": 1}, {"A=B": "x"}, ["A"]):
            w = Worker()
            rid = z.next_id
            z.next_id += 1
            _, reply = z.spawn(None, w.fds(), raw={"spawn": rid, "env": bad_env,
                                                   "self_pid_vars": []})
            w.close_sent()
            check(isinstance(reply, dict) and reply.get("failed") == rid,
                  "%s: env %r is answered 'failed' (got %r)" % (lang, bad_env, reply))
        # A bad parent-death signal (-k) fails that request only.
        for bad_sig in ("9", 0, 65, True, 1.5):
            w = Worker()
            rid = z.next_id
            z.next_id += 1
            _, reply = z.spawn(None, w.fds(), raw={"spawn": rid, "env": worker_env(),
                                                   "self_pid_vars": [], "pdeath_signal": bad_sig})
            w.close_sent()
            check(isinstance(reply, dict) and reply.get("failed") == rid
                  and "pdeath_signal" in reply.get("error", ""),
                  "%s: pdeath_signal %r is answered 'failed' (got %r)" % (lang, bad_sig, reply))
        # 'fds' (-g's channel): the fds after stdio go to those numbers in the worker.
        r_extra, w_extra = os.pipe()
        w4 = Worker()
        workers.append(w4)
        rid = z.next_id
        z.next_id += 1
        _, reply = z.spawn(None, w4.fds() + [r_extra], raw={
            "spawn": rid, "env": worker_env({"TEST_EXTRA_FDS": "%d 40" % lfd}),
            "self_pid_vars": [], "fds": [40]})
        w4.close_sent()
        if check(isinstance(reply, dict) and reply.get("spawned") == rid,
                 "%s: a request with 'fds' [40] and a 4th fd is served (got %r)" % (lang, reply)):
            w4.pid = reply["pid"]
            rep = w4.report()
            st = os.fstat(r_extra)
            check(rep is not None and rep["fds"].get("40") == [st.st_dev, st.st_ino],
                  "%s: the 4th fd is at 40 in the worker (got %r)" % (
                      lang, rep and rep["fds"].get("40")))
            check(rep is not None and rep["fds"].get(str(lfd)) is not None,
                  "%s: ... and the listen fd stays" % lang)
        os.close(w_extra)
        for bad_fds, sent in (([40], 3), (["40"], 4), ([2], 4), ([40, 40], 5), ([[40]], 4),
                              ({"40": 1}, 4)):
            w = Worker()
            rid = z.next_id
            z.next_id += 1
            _, reply = z.spawn(None, w.fds() + [r_extra] * (sent - 3), raw={
                "spawn": rid, "env": worker_env(), "self_pid_vars": [], "fds": bad_fds})
            w.close_sent()
            check(isinstance(reply, dict) and reply.get("failed") == rid,
                  "%s: 'fds' %r with %d fds is answered 'failed' (got %r)" % (
                      lang, bad_fds, sent, reply))
        os.close(r_extra)
        # An unknown message is ignored; the next request still works.
        z.sock.send(json.dumps({"hello": "future"}).encode())
        w3 = Worker()
        workers.append(w3)
        rid, reply = z.spawn(worker_env(), w3.fds())
        w3.close_sent()
        if check(isinstance(reply, dict) and reply.get("spawned") == rid,
                 "%s: after an unknown message and a failed one, spawn works (got %r)" %
                 (lang, reply)):
            w3.pid = reply["pid"]
            check(w3.report() is not None, "%s: that worker runs" % lang)

        # EOF: the zygote exits 0, its workers live on.
        z.sock.shutdown(socket.SHUT_RDWR)
        rc = z.wait_exit()
        check(rc == 0, "%s: EOF on the socket ends the zygote with 0 (got %r)" % (lang, rc))
        alive = all(proc_stat(w.pid)["state"] != "Z" for w in workers if w.pid)
        check(alive, "%s: the workers outlive the zygote" % lang)
    finally:
        z.kill()
        for w in workers:
            w.finish()
        listener.close()

    # SIGTERM ends a ready zygote, even when the application's load set TERM to ignored.
    z = Zygote(argv + ["term-handler"], zenv)
    try:
        msg = z.recv()
        check(msg == {"ready": True}, "%s: (term-handler) ready" % lang)
        z.proc.send_signal(signal.SIGTERM)
        rc = z.wait_exit()
        check(rc not in (None, "timeout"), "%s: SIGTERM ends the zygote (rc %r)" % (lang, rc))
    finally:
        z.kill()

    # A load failure: {"error": ...}, then a non-zero exit.
    z = Zygote(argv + ["fail-load"], zenv)
    try:
        msg = z.recv()
        check(isinstance(msg, dict) and "failing to load on purpose" in msg.get("error", ""),
              "%s: a load failure is reported as error (got %r)" % (lang, msg))
        rc = z.wait_exit()
        check(rc not in (0, "timeout"), "%s: then the zygote exits non-zero (rc %r)" % (lang, rc))
    finally:
        z.kill()

    # A message over 65536 bytes is a protocol error: the zygote exits, non-zero.
    z = Zygote(argv, zenv)
    try:
        z.recv()
        z.sock.send(json.dumps({"spawn": 1, "env": {"X": "y" * 70000}}).encode())
        rc = z.wait_exit()
        check(rc not in (0, "timeout"), "%s: a message over 64 KiB ends the zygote non-zero "
              "(rc %r)" % (lang, rc))
    finally:
        z.kill()

    # A message that is not JSON is a protocol error: the zygote exits, non-zero.
    z = Zygote(argv, zenv)
    try:
        z.recv()
        z.sock.send(b"\xff not json")
        rc = z.wait_exit()
        check(rc not in (0, "timeout"), "%s: a non-JSON message ends the zygote non-zero (rc %r)"
              % (lang, rc))
    finally:
        z.kill()


def python_module_scenario():
    """python3 -m einhorn_zygote MODULE:FUNCTION: the import is the load."""
    zenv = {"PATH": os.environ["PATH"], "PYTHONPATH": PYLIB}
    z = Zygote([sys.executable, "-m", "einhorn_zygote", "report_app:main", "arg1"], zenv)
    w = Worker()
    try:
        check(z.recv() == {"ready": True}, "python -m: ready after importing the module")
        rid, reply = z.spawn(worker_env(), w.fds())
        w.close_sent()
        if check(isinstance(reply, dict) and reply.get("spawned") == rid,
                 "python -m: spawn (got %r)" % (reply,)):
            w.pid = reply["pid"]
            rep = w.report()
            check(rep is not None and rep["argv"][1:] == ["arg1"] and rep["ppid"] == os.getpid(),
                  "python -m: the function runs in the worker with the module's argv (%r)" %
                  ((rep or {}).get("argv"),))
    finally:
        z.kill()
        w.finish()
    z = Zygote([sys.executable, "-m", "einhorn_zygote", "no_such_module_here"], zenv)
    try:
        msg = z.recv()
        check(isinstance(msg, dict) and "no_such_module_here" in msg.get("error", ""),
              "python -m: a module that does not import is the load error (%r)" % (msg,))
        rc = z.wait_exit()
        check(rc not in (0, "timeout"), "python -m: ... and a non-zero exit (%r)" % (rc,))
    finally:
        z.kill()


def preload_argv(path, cmd, opts=()):
    return ["ruby", os.path.join(RBLIB, "einhorn-preload.rb")] + list(opts) + [path, "--"] + cmd


def preload_scenarios():
    ref = reference_dir()
    rb_path = [ref + "/lib"] if ref else []
    zenv = {"PATH": os.environ["PATH"], "RUBYLIB": ":".join(rb_path)}
    app = os.path.join(APPS, "preload_app.rb")
    cmd = ["ruby", app, "one", "two words"]
    if not ref:
        print("skip preload: Einhorn 1.1.1's lib (einhorn/worker) not found")
        return
    # The control socket the workers ack on (Einhorn::Worker.ack!).
    tmp = tempfile.mkdtemp(prefix="zygote-preload-")
    ctl_path = os.path.join(tmp, "ctl.sock")
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(ctl_path)
    ctl.listen()
    stderr_path = os.path.join(tmp, "zygote.err")
    workers = []
    z = None
    try:
        with open(stderr_path, "wb") as err:
            sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            env = dict(zenv, EINHORN_ZYGOTE_FD=str(child.fileno()))
            proc = subprocess.Popen(preload_argv(app, cmd, ["--gc-before-fork"]), env=env,
                                    pass_fds=(child.fileno(),), process_group=0, cwd=APPS,
                                    stderr=err)
            child.close()
        z = Zygote.__new__(Zygote)
        z.sock, z.proc, z.next_id, z.sock_ino = sock, proc, 1, 0
        msg = z.recv()
        log = open(stderr_path).read()
        check(msg == {"ready": True, "preloaded": True},
              "preload: ready, preloaded (got %r; stderr %s)" % (msg, log[-600:]))
        for line in ("Requiring %s (if this hangs, make sure your code can be properly loaded "
                     "as a library)" % app, "Set ARGV = [\"one\", \"two words\"]",
                     "Starting GC to improve copy-on-write memory sharing",
                     "Finished GC after preloading", "Successfully loaded %s" % app):
            check(line in log, "preload: logs %r" % line)
        reports = []
        for i in range(2):
            w = Worker()
            workers.append(w)
            wenv = worker_env({"EINHORN_CHILD_INDEX": str(i), "EINHORN_SOCK_PATH": ctl_path,
                               "TEST_ACK": "1", "RUBYLIB": zenv["RUBYLIB"]})
            rid, reply = z.spawn(wenv, w.fds())
            w.close_sent()
            if not check(isinstance(reply, dict) and reply.get("spawned") == rid,
                         "preload: spawn %d (got %r)" % (rid, reply)):
                return
            w.pid = reply["pid"]
            ctl.settimeout(DEADLINE)
            conn, _ = ctl.accept()
            conn.settimeout(DEADLINE)
            ack = b""
            while not ack.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                ack += chunk
            conn.close()
            check(b"worker:ack" in ack and str(w.pid).encode() in ack,
                  "preload: Einhorn::Worker.ack! from worker %d reaches the master (%r)" %
                  (w.pid, ack[:120]))
            rep = w.report()
            werr = w.stderr_text()
            if not check(rep is not None, "preload: worker reports (stderr %s)" % werr[-800:]):
                return
            reports.append(rep)
            check(rep["ppid"] == os.getpid() and rep["is_worker"],
                  "preload: the worker is the master's child, Einhorn::Worker.is_worker? true")
            check(rep["child_index"] == i, "preload: Einhorn::Worker.einhorn_child_index %d" % i)
            check(rep["program_name"] == " ".join(cmd),
                  "preload: $0 is the command as given (%r)" % rep["program_name"])
            check(rep["argv"] == ["one", "two words"], "preload: ARGV (%r)" % rep["argv"])
            check(rep["env"] == dict(wenv, LISTEN_PID=str(w.pid)),
                  "preload: the environment is the one sent")
            check(rep["pgid"] == w.pid, "preload: own process group")
            check("About to tear down Einhorn state and run einhorn_main" in werr and
                  ("[WORKER %d]" % w.pid) in werr,
                  "preload: the worker logs as Einhorn's (%s)" % werr[:300])
        check(reports[0]["random"] != reports[1]["random"], "preload: srand in each worker")
    finally:
        if z:
            z.kill()
        for w in workers:
            w.finish()
        ctl.close()

    # -c NAME: $0 is "ruby NAME", as Einhorn's preloaded workers.
    run_one_preload(cmd, ["--command-name", "myapp"], zenv,
                    lambda rep, err: check(rep and rep["program_name"] == "ruby myapp",
                                           "preload: -c myapp gives $0 'ruby myapp' (%r)" %
                                           (rep and rep["program_name"])))

    # A failed load: "Proceeding with postload", ready, and the workers exec the command.
    def fallback(rep, err):
        check("Proceeding with postload -- could not load %s: failing to load on purpose "
              "(RuntimeError)" % app in err, "preload: a load failure logs Proceeding with "
              "postload")
        check(rep is not None and rep["argv"] == ["one", "two words"]
              and rep["program_name"] == app and rep["ppid"] == os.getpid(),
              "preload: ... and the worker execs the command, still the master's child (%r)" %
              ((rep and (rep["program_name"], rep["argv"])),))
    run_one_preload(cmd, [], dict(zenv, TEST_FAIL_LOAD="1"), fallback, preloaded=False)

    # A file without einhorn_main, loaded with `load` (no .rb): exec'd workers too.
    plain = os.path.join(tmp, "plain_app")
    with open(plain, "w") as f:
        f.write("$plain_loaded = true\n")
    run_one_preload(cmd, [], zenv, lambda rep, err: check(
        "Loading %s (if this hangs" % plain in err and
        "Proceeding with postload -- loaded %s, but no einhorn_main method was defined" % plain
        in err and rep is not None and rep["program_name"] == app,
        "preload: a file without .rb is loaded with load; no einhorn_main: exec'd workers"),
        preloaded=False, path=plain)

    # A SyntaxError (Einhorn's master crashes on it): error, exit non-zero.
    bad = os.path.join(tmp, "bad.rb")
    with open(bad, "w") as f:
        f.write("def einhorn_main(\n")
    sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen(preload_argv(bad, cmd), env=dict(zenv, EINHORN_ZYGOTE_FD=str(
        child.fileno())), pass_fds=(child.fileno(),), cwd=APPS, stderr=subprocess.DEVNULL)
    child.close()
    sock.settimeout(DEADLINE)
    msg = json.loads(sock.recv(65537) or b"null")
    rc = proc.wait(DEADLINE)
    check(isinstance(msg, dict) and "SyntaxError" in msg.get("error", "") and rc != 0,
          "preload: a SyntaxError is a load error and a non-zero exit (%r, rc %d)" % (msg, rc))
    sock.close()
    shutil.rmtree(tmp, ignore_errors=True)


def run_one_preload(cmd, opts, zenv, verify, preloaded=True, path=None):
    app = path or os.path.join(APPS, "preload_app.rb")
    sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(preload_argv(app, cmd, opts),
                                env=dict(zenv, EINHORN_ZYGOTE_FD=str(child.fileno())),
                                pass_fds=(child.fileno(),), process_group=0, cwd=APPS, stderr=err)
        child.close()
        z = Zygote.__new__(Zygote)
        z.sock, z.proc, z.next_id, z.sock_ino = sock, proc, 1, 0
        w = Worker()
        try:
            msg = z.recv()
            check(msg == {"ready": True, "preloaded": preloaded},
                  "preload %s: ready, preloaded %s (got %r)" % (opts, preloaded, msg))
            env = worker_env({"RUBYLIB": zenv["RUBYLIB"]})
            rid, reply = z.spawn(env, w.fds())
            w.close_sent()
            rep = None
            if isinstance(reply, dict) and reply.get("pid"):
                w.pid = reply["pid"]
                rep = w.report()
            err.seek(0)
            verify(rep, err.read().decode(errors="replace") + w.stderr_text())
        finally:
            z.kill()
            w.finish()


def reference_dir():
    for cand in (os.environ.get("EINHORN_REFERENCE"),
                 os.path.join(ROOT, "..", "shared", "reference", "einhorn-1.1.1"),
                 os.path.join(ROOT, "..", "..", "shared", "reference", "einhorn-1.1.1")):
        if cand and os.path.exists(os.path.join(cand, "lib", "einhorn.rb")):
            return os.path.abspath(cand)
    return None


def strip_tag(line):
    return re.sub(r"^\[(MASTER|ZYGOTE|WORKER) \d+\] (INFO|DEBUG|ERROR): ", "", line)


def compare_scenario():
    """Ruby Einhorn 1.1.1 -p and einhorn-preload.rb on the same app: same lines, $0, ARGV, env."""
    ref = reference_dir()
    if not ref:
        print("skip: Ruby Einhorn 1.1.1 not found (EINHORN_REFERENCE)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="zygote-compare-")
    app = os.path.join(APPS, "preload_app.rb")
    cmd = ["ruby", app, "one", "two words"]
    env = {"PATH": os.environ["PATH"], "RUBYLIB": ref + "/lib", "REPORT_DIR": tmp,
           "HOME": tmp, "TEST_ACK": "1", "TMPDIR": tmp}
    err_path = os.path.join(tmp, "einhorn.err")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(["ruby", "-I" + ref + "/lib", ref + "/bin/einhorn", "-m", "manual",
                                 "-d", os.path.join(tmp, "e.sock"), "-p", app, "--"] + cmd,
                                env=env, cwd=APPS, stderr=err, stdout=subprocess.DEVNULL,
                                process_group=0)
    end = time.monotonic() + DEADLINE
    ruby_rep = None
    while time.monotonic() < end and ruby_rep is None:
        for name in os.listdir(tmp):
            if name.endswith(".json"):
                with open(os.path.join(tmp, name)) as f:
                    text = f.read()
                if text.endswith("\n"):
                    ruby_rep = json.loads(text)
        time.sleep(0.05)
    time.sleep(0.3)  # the ack's log line
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if ruby_rep is not None:  # Einhorn's worker leads its own group: it outlives the killpg
        try:
            os.kill(ruby_rep["pid"], signal.SIGKILL)
            os.waitpid(ruby_rep["pid"], 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    ruby_log = [strip_tag(l) for l in open(err_path).read().splitlines()]
    if os.environ.get("ZYGOTE_DRIVER_DEBUG"):
        print("\n".join(ruby_log))
    if not check(ruby_rep is not None, "compare: Ruby Einhorn's preloaded worker reports"):
        print("\n".join(ruby_log[-30:]))
        return

    # Ours, under the driver, with the environment Einhorn gave its worker.
    ours_dir = tempfile.mkdtemp(prefix="zygote-compare-ours-")
    zenv = dict(env, REPORT_DIR=ours_dir)
    err_path2 = os.path.join(tmp, "ours.err")
    sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctl_path = os.path.join(ours_dir, "ctl.sock")
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(ctl_path)
    ctl.listen()
    with open(err_path2, "wb") as err:
        proc = subprocess.Popen(preload_argv(app, cmd), env=dict(
            zenv, EINHORN_ZYGOTE_FD=str(child.fileno())), pass_fds=(child.fileno(),), cwd=APPS,
            stderr=err, process_group=0)
    child.close()
    z = Zygote.__new__(Zygote)
    z.sock, z.proc, z.next_id, z.sock_ino = sock, proc, 1, 0
    our_rep = None
    w = Worker()
    try:
        check(z.recv() == {"ready": True, "preloaded": True}, "compare: ours is ready")
        wenv = {k: v for k, v in ruby_rep["env"].items()}
        wenv.update({"REPORT_DIR": ours_dir, "EINHORN_SOCK_PATH": ctl_path,
                     "EINHORN_MASTER_PID": str(os.getpid())})
        wenv.pop("LISTEN_PID", None)
        rid, reply = z.spawn(wenv, w.fds(), self_pid_vars=())
        w.close_sent()
        if isinstance(reply, dict) and reply.get("pid"):
            w.pid = reply["pid"]
            ctl.setblocking(False)
            conns = []
            path = os.path.join(ours_dir, "%d.json" % w.pid)
            end = time.monotonic() + DEADLINE
            while time.monotonic() < end and our_rep is None:
                try:
                    conns.append(ctl.accept()[0])  # the worker's ack; kept open until the end
                except BlockingIOError:
                    pass
                if os.path.exists(path) and open(path).read().endswith("\n"):
                    our_rep = json.load(open(path))
                time.sleep(0.05)
            for c in conns:
                c.close()
    finally:
        z.kill()
        w.finish()
        ctl.close()
    our_worker_err = w.stderr_text()
    if not check(our_rep is not None, "compare: our preloaded worker reports (%s)" %
                 our_worker_err[-800:]):
        return
    check(our_rep["program_name"] == ruby_rep["program_name"],
          "compare: $0 %r (Einhorn %r)" % (our_rep["program_name"], ruby_rep["program_name"]))
    check(our_rep["argv"] == ruby_rep["argv"],
          "compare: ARGV %r (Einhorn %r)" % (our_rep["argv"], ruby_rep["argv"]))
    ours_env = {k: v for k, v in our_rep["env"].items()
                if k not in ("REPORT_DIR", "EINHORN_SOCK_PATH", "EINHORN_MASTER_PID")}
    theirs_env = {k: v for k, v in ruby_rep["env"].items()
                  if k not in ("REPORT_DIR", "EINHORN_SOCK_PATH", "EINHORN_MASTER_PID")}
    check(ours_env == theirs_env, "compare: the worker's environment (diff %r)" % sorted(
        set(ours_env.items()) ^ set(theirs_env.items())))
    check(our_rep["child_index"] == ruby_rep["child_index"] and our_rep["is_worker"] and
          ruby_rep["is_worker"], "compare: Einhorn::Worker's view")
    ours_log = [strip_tag(l) for l in open(err_path2).read().splitlines()]
    wanted = [l for l in ruby_log if re.match(
        r"(Requiring|Loading|Successfully loaded|Proceeding with postload|Set |About to tear)", l)]
    missing = [l for l in wanted if l not in ours_log + [strip_tag(x) for x in
                                                         our_worker_err.splitlines()]]
    # $0 in "Set $0 = ..." is the same text; the lines are compared whole.
    check(wanted and not missing, "compare: Einhorn's preload lines, word for word (%d lines;"
          " missing %r)" % (len(wanted), missing))
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(ours_dir, ignore_errors=True)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("python", "ruby", "preload", "compare"):
        print(__doc__)
        return 2
    become_subreaper()
    which = sys.argv[1]
    if which in ("python", "ruby"):
        library_scenarios(which)
        if which == "python":
            python_module_scenario()
    elif which == "preload":
        preload_scenarios()
    else:
        compare_scenario()
    # Any process left over is a bug in a scenario or in a library: reap it, fail the run.
    leftover = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        leftover.append(pid)
    print("%d check(s) failed" % len(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
