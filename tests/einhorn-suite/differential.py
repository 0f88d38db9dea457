#!/usr/bin/env python3
"""Runs the same scenarios under Ruby Einhorn 1.1.1 and einhorn-cpp, side by side, and compares
replies, exit codes and output.

Usage: tests/einhorn-suite/differential.py [--einhorn-cpp PATH] [--reference DIR] [--verbose]

Scenarios: every verb of the command socket (one fresh connection each, request as one JSON
line, as einhornsh and go-einhorn send), garbage and empty lines, worker:ack shapes, flag
errors, and einhornsh -e sessions. Pids, paths, versions and program names are normalised.

Every difference found is printed with its class:
  known       a bug being closed by another change (issue 15: state, no-command usage, ...)
  deliberate  listed in README "Differences from Einhorn", with the reason
  NEW         anything else: a bug to fix or a difference to document
Exit status: 0 when only deliberate differences remain, 1 otherwise (known ones too: they must
go), 77 when ruby, python3-yaml or the reference source is missing (ctest: skipped). KNOWN below
lists the known and deliberate ones, by scenario name.

`state` is compared by shape: every key Einhorn's `YAML.dump({:state => State})` has (in the
state, in a child, in the config) must be there, and a child's `:type` must be `:worker`.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

# scenario name -> (class, why). A difference in a scenario not listed here is NEW.
KNOWN = {
    "flag: no command": ("known", "issue 15 #4: usage on stdout, exit 1 (flags helper)"),
    "verb: state (shape)": ("known", "issue 15 #1: YAML.dump({:state => State}) (state helper)"),
    "flag: unknown flag": (
        "deliberate", "a bad flag is one line and exit 2, never a Ruby backtrace"),
    "flag: -m bad": ("deliberate", "a bad flag is one line and exit 2, never a Ruby backtrace"),
    "flag: -n 0": ("deliberate", "-n 0 is refused at startup (Einhorn runs an empty pool)"),
    "flag: -s 0": ("deliberate", "a bad flag is one line and exit 2, never a Ruby backtrace"),
    "flag: --version": ("deliberate", "its own name and version"),
    "verb list": ("deliberate", "help and an unknown verb list einhorn-cpp's verbs (status, "
                  "events, metrics...) with their own descriptions"),
    "error key": ("deliberate", "a refusal carries `error: true` beside Einhorn's `message` "
                  "(einhornctl exits non-zero on it; Einhorn's clients read only `message`)"),
    "verb: set_workers (no args)": ("deliberate", "the bound is [1,10000], not [1,1000)"),
    "verb: set_workers abc": ("deliberate", "the bound is [1,10000], not [1,1000)"),
    "verb: set_workers -1": ("deliberate", "the bound is [1,10000], not [1,1000)"),
    "einhornsh: set_workers abc": ("deliberate", "the bound is [1,10000], not [1,1000)"),
    "verb: config (no args)": ("deliberate", "config is not supported (no internal state to "
                               "merge into)"),
    "verb: upgrade progress lines": ("deliberate", "the progress lines between 'Upgrading "
                                     "smoothly, as commanded' and 'Upgrade done' are "
                                     "einhorn-cpp's own (generations, readiness)"),
    "verb: die (args [])": ("deliberate", "Einhorn replies 'Einhorn is going down! ' plus the "
                            "signal_all text; see the README"),
    "verb: signal EXIT": ("deliberate", "refused as an invalid signal; Einhorn lets EXIT through "
                          "and replies with a Ruby backtrace (see the README)"),
    "flag: -h": ("deliberate", "its own usage text, and exit 0 (Einhorn exits 1 after -h)"),
}

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(77)


class Impl:
    def __init__(self, name, argv, env):
        self.name = name
        self.argv = argv
        self.env = env


def normalise(text, subs):
    if text is None:
        return None
    if not isinstance(text, str):
        text = json.dumps(text, sort_keys=True)
    for pattern, repl in subs:
        text = re.sub(pattern, repl, text)
    return text


class RubyYamlLoader(yaml.SafeLoader if yaml else object):
    """Reads Ruby's YAML: `!ruby/object:Set` and other tags become plain values."""


if yaml:
    def _any_tag(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)
    RubyYamlLoader.add_multi_constructor("!", _any_tag)


def state_shape(message):
    """The keys of a `state` reply, for comparing its shape."""
    try:
        doc = yaml.load(message, Loader=RubyYamlLoader)
    except Exception as e:  # noqa: BLE001
        return {"unparsed": str(e).splitlines()[0]}
    st = doc.get(":state") if isinstance(doc, dict) else None
    if not isinstance(st, dict):
        return {"no :state mapping": True}
    children = st.get(":children") or {}
    child_keys, types = set(), set()
    if isinstance(children, dict):
        for c in children.values():
            if isinstance(c, dict):
                child_keys |= set(c.keys())
                types.add(str(c.get(":type")))
    config = st.get(":config") if isinstance(st.get(":config"), dict) else {}
    return {"state": sorted(st.keys()), "child": sorted(child_keys), "types": sorted(types),
            "config": sorted(config.keys())}


def decode_reply(line):
    raw = line.replace("%0A", "\n").replace("%25", "%")
    try:
        doc = yaml.safe_load(raw)
    except Exception:  # noqa: BLE001
        return {"unparsed": raw}
    return doc


VERB_LIST = re.compile(r"(?m)^(?:[a-z_:]+: .*\n)+")
ERROR_KEY_SEEN = {}


def canon(name, impl, docs):
    """Strips the error key (reported once, as its own difference) and, in help texts, the
    verb list (likewise)."""
    out = []
    for d in docs:
        if isinstance(d, dict):
            d = dict(d)
            if d.pop("error", None) is True:
                ERROR_KEY_SEEN.setdefault(impl, []).append(name)
            msg = d.get("message")
            if isinstance(msg, str) and (name.endswith("help") or "unknown" in name):
                lists = VERB_LIST.findall(msg)
                if lists:
                    VERB_LIST_SEEN.setdefault(impl, lists[-1])
                    d["message"] = VERB_LIST.sub("<VERB LIST>\n", msg)
        out.append(d)
    return out


VERB_LIST_SEEN = {}


class Conn:
    """One command-socket connection: send raw bytes, collect the reply documents."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.buf = b""

    def ask(self, data, quiet_after=1.5, overall=30):
        self.s.sendall(data)
        docs = []
        deadline = time.time() + overall
        ending = "open"
        while time.time() < deadline:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                doc = decode_reply(line.decode("utf-8", "replace"))
                docs.append(doc)
                if isinstance(doc, dict) and not doc.get("wait"):
                    return docs, "replied"
            self.s.settimeout(quiet_after if not docs else 10)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                ending = "silent, open"
                break
            except ConnectionResetError:
                ending = "reset"
                break
            if not chunk:
                ending = "closed"
                break
            self.buf += chunk
        return docs, ending

    def close(self):
        self.s.close()


def run(argv, env, timeout=20, stdin=subprocess.DEVNULL):
    p = subprocess.run(argv, env=env, stdin=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def wait_for(cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    return None


class Master:
    def __init__(self, impl, workdir, extra=()):
        self.dir = workdir
        self.sock = os.path.join(workdir, "c.sock")
        env = dict(impl.env, TMPDIR=workdir)
        self.log = open(os.path.join(workdir, "master.log"), "wb")
        self.p = subprocess.Popen(
            impl.argv + ["-d", self.sock, "-n", "1", "-m", "0.2", *extra, "--",
                         # HUP and USR1 ignored: the signal verb must not kill it.
                         "sh", "-c", "trap '' HUP USR1; exec sleep 1000"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        ok = wait_for(lambda: os.path.exists(self.sock) and children_of(self.p.pid), 60)
        if not ok:
            self.stop()
            raise RuntimeError(f"{impl.name}: the master did not start (see {self.log.name})")
        time.sleep(0.5)  # the timer ack

    def worker(self):
        kids = wait_for(lambda: [k for k in children_of(self.p.pid)], 20) or [0]
        return kids[0]

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        # Whatever is left in its session (workers in their own process groups).
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.getsid(int(entry)) == self.p.pid:
                        os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass
        self.log.close()


def socket_scenarios(impl, einhornsh, base):
    """Returns {scenario: result} for one implementation."""
    results = {}
    work = tempfile.mkdtemp(prefix=impl.name + ".", dir=base)
    m = Master(impl, work)
    subs = [(re.escape(work), "<DIR>"), (r"\b%d\b" % m.p.pid, "<MASTER_PID>"),
            (r"Einhorn 1\.1\.1|einhorn-cpp \d+\.\d+\.\d+", "<PROG> <VERSION>")]

    def ask(name, data, **kw):
        worker = m.worker()
        c = Conn(m.sock)
        try:
            docs, ending = c.ask(data, **kw)
        finally:
            c.close()
        s = subs + [(r"\b%d\b" % worker, "<WORKER_PID>")]
        docs = canon(name, impl.name, docs)
        if name.startswith("verb: upgrade") and len(docs) > 2:
            # First and last line, and that every line but the last says wait: true; the lines
            # in between are compared on their own.
            middle = [d.get("message") if isinstance(d, dict) else d for d in docs[1:-1]]
            results["verb: upgrade progress lines"] = normalise(middle, s + [(r"\d+", "N")])
            waits = all(isinstance(d, dict) and d.get("wait") for d in docs[:-1])
            docs = [docs[0], {"...": "progress lines, all wait: true" if waits else "BAD"},
                    docs[-1]]
        results[name] = normalise({"replies": docs, "then": ending}, s)

    def cmd(command, args=None, rid=None, **extra):
        req = {"command": command}
        if args is not None:
            req["args"] = args
        if rid is not None:
            req["id"] = rid
        req.update(extra)
        return (json.dumps(req) + "\n").encode()

    try:
        ask("verb: ehlo", cmd("ehlo", user="tester", rid=1))
        ask("verb: help", cmd("help", rid=2))
        ask("verb: unknown", cmd("frobnicate", rid=3))
        ask("verb: no command key", b'{"id": 4}\n')
        ask("verb: quieter", cmd("quieter", rid=5))
        ask("verb: louder", cmd("louder", rid=6))
        ask("verb: inc", cmd("inc", rid=7))
        ask("verb: dec", cmd("dec", rid=8))
        ask("verb: set_workers 2", cmd("set_workers", ["2"], rid=9))
        ask("verb: set_workers 1", cmd("set_workers", ["1"], rid=10))
        ask("verb: set_workers (no args)", cmd("set_workers", [], rid=11))
        ask("verb: set_workers abc", cmd("set_workers", ["abc"], rid=12))
        ask("verb: set_workers -1", cmd("set_workers", ["-1"], rid=13))
        ask("verb: set_workers 1 2", cmd("set_workers", ["1", "2"], rid=14))
        ask("verb: set_workers [1] (an integer)", cmd("set_workers", [1], rid=141))
        ask("verb: set_workers \"1\" (not an array)", cmd("set_workers", "1", rid=142))
        ask("verb: request id a string", cmd("louder", rid="abc"))
        ask("verb: signal (no args)", cmd("signal", [], rid=15))
        ask("verb: signal USR1", cmd("signal", ["USR1"], rid=16))
        ask("verb: signal usr1 SIGHUP", cmd("signal", ["usr1", "SIGHUP"], rid=161))
        ask("verb: signal CONT", cmd("signal", ["CONT"], rid=162))
        ask("verb: signal BOGUS", cmd("signal", ["BOGUS"], rid=17))
        # Any name of Ruby's Signal.list, aliases too; only ones the worker survives.
        ask("verb: signal WINCH sigurg", cmd("signal", ["WINCH", "sigurg"], rid=163))
        ask("verb: signal cld SIGCONT", cmd("signal", ["cld", "SIGCONT"], rid=164))
        ask("verb: signal sighup + newline", cmd("signal", ["sighup\n"], rid=165))
        ask("verb: signal 9", cmd("signal", ["9"], rid=166))
        ask("verb: signal STKFLT", cmd("signal", ["STKFLT"], rid=167))
        ask("verb: die 9", cmd("die", ["9"], rid=168))
        ask("verb: signal EXIT", cmd("signal", ["EXIT"], rid=169))
        ask("verb: config (no args)", cmd("config", [], rid=18))
        c = Conn(m.sock)
        try:
            docs, _ = c.ask(cmd("state", rid=19))
        finally:
            c.close()
        msg = docs[0].get("message", "") if docs and isinstance(docs[0], dict) else ""
        results["verb: state (shape)"] = state_shape(msg)
        ask("wire: garbage", b"this is: not: yaml: [\n")
        ask("wire: not a mapping", b"- 1\n- 2\n")
        ask("wire: empty line", b"\n")
        ask("wire: YAML block request", b"---%0Acommand: ehlo%0Aid: 20%0A\n")
        ask("ack: JSON from a non-worker pid", cmd("worker:ack", pid=1))
        ask("ack: without a pid", cmd("worker:ack"))
        ask("ack: JSON for the worker", (json.dumps(
            {"command": "worker:ack", "pid": m.worker()}) + "\n").encode())
        ask("ack: Ruby block YAML for the worker",
            f"---%0Acommand: worker:ack%0Apid: {m.worker()}%0A\n".encode())
        # einhornsh -e sessions (non-interactive: only the replies, on stdout).
        for name, seq in [("einhornsh: ehlo", "ehlo"),
                          ("einhornsh: inc; dec", "inc; dec"),
                          ("einhornsh: quieter; louder", "quieter; louder"),
                          ("einhornsh: unknown", "frobnicate"),
                          ("einhornsh: set_workers abc", "set_workers abc"),
                          ("einhornsh: signal CONT; signal winch urg",
                           "signal CONT; signal winch urg")]:
            rc, out, err = run(einhornsh + ["-d", m.sock, "-e", seq], impl.env, timeout=60)
            out = canon(name, impl.name, [{"message": out}])[0]["message"]
            results[name] = normalise({"rc": rc, "stdout": out}, subs)
        ask("verb: reload", cmd("reload", rid=30), quiet_after=5, overall=90)
        wait_for(lambda: os.path.exists(m.sock) and children_of(m.p.pid), 30)
        time.sleep(2)
        ask("verb: upgrade (no id)", cmd("upgrade"), quiet_after=5, overall=90)
        wait_for(lambda: os.path.exists(m.sock) and children_of(m.p.pid), 30)
        time.sleep(2)
        ask("verb: upgrade (with id)", cmd("upgrade", rid=21), quiet_after=20, overall=120)
        time.sleep(1)
        ask("verb: die (no args key)", cmd("die", rid=22), quiet_after=3)
        ask("verb: die (args [])", cmd("die", [], rid=23), quiet_after=3)
        try:
            rc = m.p.wait(30)
        except subprocess.TimeoutExpired:
            rc = "still running"
        results["verb: die (master exit)"] = str(rc)
    finally:
        m.stop()
    return results


def flag_scenarios(impl, base):
    results = {}
    work = tempfile.mkdtemp(prefix=impl.name + ".flags.", dir=base)
    sock = os.path.join(work, "f.sock")
    subs = [(re.escape(work), "<DIR>"), (r"/\S*/bin/einhorn:\d+:in", "<REF>/bin/einhorn:N:in"),
            (r"\b\d+\.\d+\.\d+\b", "<VERSION>"), (r"\[MASTER \d+\]", "[MASTER <PID>]"),
            (r"einhorn-cpp|einhorn", "<PROG>")]
    cases = [
        ("flag: unknown flag", ["--bogus-flag", "sleep", "100"]),
        ("flag: -n 0", ["-d", sock, "-n", "0", "sleep", "100"]),
        ("flag: -m bad", ["-d", sock, "-m", "bad", "sleep", "100"]),
        ("flag: -s 0", ["-d", sock, "-s", "0", "sleep", "100"]),
        ("flag: --version", ["--version"]),
        ("flag: -h", ["-h"]),
        ("flag: no command", []),
    ]
    for name, args in cases:
        env = dict(impl.env, TMPDIR=work)
        p = subprocess.Popen(impl.argv + args, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=8)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            out, err = p.communicate(timeout=30)
            rc = "running (stopped by the test)"
        out = out.decode("utf-8", "replace")
        err = err.decode("utf-8", "replace")
        if rc == "running (stopped by the test)":
            out, err = "", ""  # the logs of a running master: different by design
        else:
            err = err.strip().splitlines()[0] if err.strip() else ""
            out = out.strip().splitlines()[0] if out.strip() else ""
        results[name] = normalise({"rc": rc, "stdout[0]": out, "stderr[0]": err}, subs)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--einhorn-cpp", default=os.path.join(SRC, "build", "einhorn-cpp"))
    ap.add_argument("--reference",
                    default=os.path.join(SRC, "..", "shared", "reference", "einhorn-1.1.1"))
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    ruby = shutil.which("ruby")
    if not ruby:
        skip("ruby is not installed (scripts/install-deps test installs it)")
    if yaml is None:
        skip("python3-yaml is missing (scripts/install-deps test installs it)")
    ref = os.path.abspath(a.reference)
    if not os.path.isfile(os.path.join(ref, "bin", "einhorn")):
        skip(f"Einhorn's source is not at {ref} (give it with --reference)")
    if not os.access(a.einhorn_cpp, os.X_OK):
        skip(f"no einhorn-cpp binary at {a.einhorn_cpp}")
    base = tempfile.mkdtemp(prefix="ehd.", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EINHORN_")}
    env["RUBYLIB"] = os.path.join(ref, "lib")
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "detect_leaks=0")
    env["USER"] = "tester"
    impls = [Impl("ruby", [ruby, os.path.join(ref, "bin", "einhorn")], env),
             Impl("cpp", [os.path.abspath(a.einhorn_cpp)], env)]
    einhornsh = [ruby, os.path.join(ref, "bin", "einhornsh")]
    got = {}
    try:
        for impl in impls:
            got[impl.name] = {**flag_scenarios(impl, base),
                              **socket_scenarios(impl, einhornsh, base)}
    finally:
        if a.keep:
            print("scratch kept: " + base)
        else:
            shutil.rmtree(base, ignore_errors=True)
    new = 0
    names = list(got["ruby"].keys())
    same = 0
    for name in names:
        r, c = got["ruby"].get(name), got["cpp"].get(name)
        if name == "verb: state (shape)" and isinstance(r, dict) and isinstance(c, dict):
            # What Einhorn has and einhorn-cpp lacks; more is fine.
            missing = {k: sorted(set(r.get(k, [])) - set(c.get(k, [])))
                       for k in ("state", "child", "types", "config")}
            missing = {k: v for k, v in missing.items() if v}
            r = "(Einhorn's keys)"
            c = ("missing: " + json.dumps(missing)) if missing else r
        if r == c:
            same += 1
            if a.verbose:
                print(f"same        {name}: {r}")
            continue
        cls, why = KNOWN.get(name, ("NEW", ""))
        if cls != "deliberate":
            new += 1
        print(f"{cls:<11} {name}{(' (' + why + ')') if why else ''}")
        print(f"    ruby: {r}")
        print(f"    cpp:  {c}")
    for key, seen in (("error key", ERROR_KEY_SEEN), ("verb list", VERB_LIST_SEEN)):
        if seen.get("ruby") != seen.get("cpp"):
            cls, why = KNOWN[key]
            print(f"{cls:<11} {key} ({why})")
            if a.verbose:
                print(f"    ruby: {seen.get('ruby')}\n    cpp:  {seen.get('cpp')}")
    print(f"{same} of {len(names)} scenarios identical; {new} difference(s) that must go "
          "(NEW or known)")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
