"""Preload for einhorn-cpp: load the application once, fork the workers from it.

Usage, in the worker program (the same file runs exec'd, without a zygote)::

    import einhorn_zygote

    def load():            # optional: the expensive imports, reported if they fail
        global np
        import numpy as np

    def main():            # one worker
        ...

    einhorn_zygote.serve(main, load=load)

or without touching the program: ``python3 -m einhorn_zygote MODULE[:FUNCTION] [ARGS...]``
imports MODULE (the load) and calls FUNCTION (default ``main``) in each worker.

When EINHORN_ZYGOTE_FD is not set (the worker was exec'd as usual), serve() calls load() and
main() and returns what main() returns. When it is set, this process is einhorn-cpp's zygote
(protocol v1, man einhorn-zygote(7)): serve() calls load(), says ready, then forks one worker per
request of the master. In each worker serve() returns what main() returns, exactly as in the
exec'd case; the zygote itself never returns from serve(): it exits 0 when the master closes
the socket, and dies on SIGTERM.

Standard library only (Python 3.7+; Debian 12's 3.11 is the one tested).
"""

import errno
import fcntl
import gc
import json
import os
import random
import signal
import socket
import sys

__all__ = ["serve", "is_zygote", "PROTOCOL_VERSION"]

PROTOCOL_VERSION = 1
ENV_FD = "EINHORN_ZYGOTE_FD"
MAX_MESSAGE = 65536


def is_zygote():
    """True when this process was started as einhorn-cpp's zygote."""
    return bool(os.environ.get(ENV_FD))


def _log(text):
    try:
        sys.stderr.write("einhorn_zygote[%d]: %s\n" % (os.getpid(), text))
        sys.stderr.flush()
    except Exception:  # stderr gone: nothing to say it with
        pass


def _send(sock, obj):
    sock.send(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def _zygote_socket():
    text = os.environ.get(ENV_FD, "")
    if not text.isdigit() or len(text) > 9:
        _log("%s=%r is not an fd number" % (ENV_FD, text))
        os._exit(2)
    fd = int(text)
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        _log("%s=%d: not a socket (%s)" % (ENV_FD, fd, e))
        os._exit(2)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
        _log("%s=%d: not an AF_UNIX SOCK_SEQPACKET socket" % (ENV_FD, fd))
        os._exit(2)
    sock.set_inheritable(False)  # nothing the application execs gets it
    del os.environ[ENV_FD]
    return sock


def _receive(sock):
    """One request: (dict or None at EOF, [fds]). Exits on a protocol error."""
    while True:
        try:
            msg, anc, flags, _ = sock.recvmsg(MAX_MESSAGE + 1, socket.CMSG_SPACE(16 * 4),
                                              socket.MSG_CMSG_CLOEXEC)
            break
        except InterruptedError:
            continue
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(int.from_bytes(data[i:i + 4], sys.byteorder)
                       for i in range(0, usable, 4))
    if not msg and not fds:
        return None, []
    problem = None
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(msg) > MAX_MESSAGE:
        problem = "a message over %d bytes or with too many fds" % MAX_MESSAGE
    else:
        try:
            obj = json.loads(msg.decode("utf-8"))
            if not isinstance(obj, dict):
                problem = "a message that is not a JSON object"
        except (UnicodeDecodeError, ValueError):
            problem = "a message that is not JSON"
    if problem:
        _close_all(fds)
        _log("protocol error from the master: %s; exiting" % problem)
        os._exit(3)
    return obj, fds


def _close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _valid_request(req):
    """The problem with a spawn request, or None."""
    rid = req.get("spawn")
    if isinstance(rid, bool) or not isinstance(rid, int) or rid <= 0:
        return "'spawn' is not a positive integer"
    env = req.get("env")
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and "=" not in k and "\0" not in k
            and "\0" not in v for k, v in env.items()):
        return "'env' is not an object of strings"
    names = req.get("self_pid_vars", [])
    if not isinstance(names, list) or not all(
            isinstance(n, str) and n and "=" not in n and "\0" not in n for n in names):
        return "'self_pid_vars' is not a list of names"
    targets = req.get("fds", [])
    if not isinstance(targets, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and 3 <= t < 65536
            for t in targets) or len(set(targets)) != len(targets):
        return "'fds' is not a list of distinct fd numbers from 3"
    sig = req.get("pdeath_signal")
    if sig is not None and (isinstance(sig, bool) or not isinstance(sig, int)
                            or not 1 <= sig <= 64):
        return "'pdeath_signal' is not a signal number"
    return None


_PRCTL = []  # libc's prctl, looked up in the zygote the first time a request needs it


def _prctl():
    if not _PRCTL:
        import ctypes
        _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)
    return _PRCTL[0]


def _set_parent_death_signal(sig):
    """-k: a fork cleared the parent-death signal, so the worker sets it once the master is its
    parent (before, C's exit would fire it). As an exec'd worker, it then checks that the master
    is still its parent: one that died just before would never send it."""
    import ctypes
    if _prctl()(1, sig, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    master = os.environ.get("EINHORN_MASTER_PID", "")
    if master.isdigit() and os.getppid() != int(master):
        os._exit(1)


# The dispositions an exec'd Python interpreter starts with: everything default, but SIGINT
# raises KeyboardInterrupt and SIGPIPE/SIGXFSZ are ignored (Python sets those at start-up), so
# that a forked worker behaves as the same program exec'd.
def _reset_signals():
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _become_worker(sock, req, fds, intermediate):
    """In the worker W, before any application code (protocol v1, 'How the zygote forks')."""
    os.setpgid(0, 0)
    _reset_signals()
    _replace_environ(req["env"], req.get("self_pid_vars", []))
    # Two phases, so that a received fd sitting at a target number is not overwritten before
    # it is copied: first copies above every target, then each to its number. The zygote socket
    # goes first: its number is the one after the listeners, where -g's channel goes.
    targets = [0, 1, 2] + list(req.get("fds", []))
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, max(targets) + 1) for fd in fds]
    sock.close()
    for target, fd in zip(targets, high):
        os.dup2(fd, target, inheritable=True)
    _close_all(set(fds + high) - set(targets))
    random.seed()
    _wait_for_reparenting(intermediate)
    if req.get("pdeath_signal") is not None:
        _set_parent_death_signal(req["pdeath_signal"])


def _replace_environ(env, self_pid_vars):
    """os.environ becomes env (plus self_pid_vars set to our pid). Only what differs is
    changed: a worker's environment is mostly the zygote's already, and each putenv/unsetenv
    of a full replacement costs CPU in every worker (a third of a millisecond for 40 names)."""
    env = dict(env)
    pid = str(os.getpid())
    for name in self_pid_vars:
        env[name] = pid
    for name in [n for n in os.environ if n not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _wait_for_reparenting(intermediate):
    """Application code must see the master as its parent (Einhorn clients check getppid()
    against EINHORN_MASTER_PID): wait until C has exited and this process was reparented.
    C exits right after forking, so this is a few milliseconds at most."""
    import time
    delay = 0.0005
    while os.getppid() == intermediate:
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def _flush_stdio():
    """Nothing buffered in the zygote may be written twice (by it and by a worker); a closed
    stdout must not end the zygote."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _fork_worker(sock, req, fds):
    """Double fork. Returns (worker pid, None) in the zygote, or (None, error text); in the
    worker it returns ('worker', None)."""
    r, w = os.pipe()  # both CLOEXEC
    _flush_stdio()
    # Everything the zygote has allocated so far goes to the collector's permanent generation,
    # which collections never walk: a worker's collections then do not write to (and so copy)
    # the pages of the objects loaded in the zygote (Python's advice for fork without exec).
    # O(1); the worker may gc.unfreeze().
    gc.freeze()
    try:
        child = os.fork()
    except OSError as e:
        os.close(r)
        os.close(w)
        return None, "fork: %s" % e.strerror
    if child == 0:  # the intermediate child C
        os.close(r)
        intermediate = os.getpid()
        try:
            worker = os.fork()
        except OSError as e:
            os.write(w, ("E" + str(e.strerror)).encode())
            os._exit(1)
        if worker != 0:
            # Its process group before anyone hears of it (it does the same first thing, but
            # may not have run yet when the reply arrives).
            try:
                os.setpgid(worker, worker)
            except OSError:
                pass
            os.write(w, ("P%d" % worker).encode())
            os._exit(0)
        os.close(w)
        try:
            _become_worker(sock, req, fds, intermediate)
        except BaseException as e:  # no application code has run: nothing to clean up
            _log("worker set-up failed: %r" % (e,))
            os._exit(127)
        return "worker", None
    os.close(w)
    report = b""
    while True:
        chunk = os.read(r, 256)
        if not chunk:
            break
        report += chunk
    os.close(r)
    while True:
        try:
            os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            break
    text = report.decode("utf-8", "replace")
    if text.startswith("P") and text[1:].isdigit():
        return int(text[1:]), None
    if text.startswith("E"):
        return None, "fork: " + text[1:]
    return None, "the intermediate child died without reporting the worker's pid"


def _serve_requests(sock):
    """The zygote's loop. Returns only in a freshly forked worker."""
    while True:
        req, fds = _receive(sock)
        if req is None:
            os._exit(0)  # EOF: the master is done with this generation
        if "spawn" not in req:
            _close_all(fds)
            continue  # a message this version does not know: ignored (forward compatible)
        problem = _valid_request(req)
        if problem is None and len(fds) != 3 + len(req.get("fds", [])):
            problem = "%d fds instead of %d (stdin, stdout, stderr and 'fds')" % (
                len(fds), 3 + len(req.get("fds", [])))
        rid = req.get("spawn")
        if problem is not None:
            _close_all(fds)
            if isinstance(rid, int) and not isinstance(rid, bool) and rid > 0:
                _send(sock, {"failed": rid, "error": problem})
                continue
            _log("protocol error from the master: %s; exiting" % problem)
            os._exit(3)
        if req.get("pdeath_signal") is not None:
            _prctl()  # looked up once, before the fork, not in every worker
        pid, error = _fork_worker(sock, req, fds)
        if pid == "worker":
            return
        _close_all(fds)
        if pid is None:
            _send(sock, {"failed": rid, "error": error})
        else:
            _send(sock, {"spawned": rid, "pid": pid})


def serve(main, load=None):
    """Run main() as a worker: directly when exec'd, or once per worker forked from this
    zygote when started by einhorn-cpp --preload. load(), if given, runs once before (in the
    zygote: before ready; an exception there is reported as the load error)."""
    if not is_zygote():
        if load is not None:
            load()
        return main()
    sock = _zygote_socket()
    if load is not None:
        try:
            load()
        except BaseException as e:
            _fail_load(sock, e)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # SIGTERM ends a zygote, whatever load() set
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    _flush_stdio()
    try:
        _send(sock, {"ready": True})
    except OSError as e:
        if e.errno in (errno.EPIPE, errno.ECONNRESET):
            os._exit(0)
        raise
    _serve_requests(sock)
    return main()


def _fail_load(sock, e):
    text = "%s: %s" % (type(e).__name__, e)
    if len(text) > 4000:
        text = text[:4000] + "..."
    import traceback
    traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    try:
        _send(sock, {"error": text})
    except OSError:
        pass
    sys.stderr.flush()
    os._exit(1)


def _run_module(argv):
    """python3 -m einhorn_zygote MODULE[:FUNCTION] [ARGS...]"""
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: python3 -m einhorn_zygote MODULE[:FUNCTION] [ARGS...]\n")
        return 2
    target = argv[0]
    module_name, _, func_name = target.partition(":")
    func_name = func_name or "main"
    sys.argv = argv[:]  # the application sees its own argv, as with python3 -m MODULE
    state = {}

    def load():
        import importlib
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
        func = getattr(module, func_name, None)
        if not callable(func):
            raise AttributeError("module %r has no function %r" % (module_name, func_name))
        state["main"] = func

    rc = serve(lambda: state["main"](), load=load)
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(_run_module(sys.argv[1:]))
