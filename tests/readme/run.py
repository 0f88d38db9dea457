#!/usr/bin/env python3
"""Runs the README's own commands as a new user would after scripts/demo, and checks that the
demo and the README agree on where the binaries are.

Usage: tests/readme/run.py --build BUILD_DIR [--readme README.md] [--demo scripts/demo]

1. Installs BUILD_DIR (cmake --install) into a private prefix and puts its bin/ first on PATH,
   as the README's `export PATH=...` line does for build-demo/prefix.
2. Runs, in order and each line checked for exit status 0 (bash -e), the command blocks of
   "Resize a running pool", "Manual acks" (the worker.sh block is saved as worker.sh) and
   "Upgrade the workers" + "Upgrade the master (reload)" (one session: the second uses the first
   one's master). After a line that starts a master in the background (`... &`), the next line
   waits until `einhornctl [-c NAME] status` answers, as a person typing would. Two things are
   substituted so that parallel runs cannot collide: TCP ports become 0 (no block connects to
   them) and /tmp/web becomes a private directory; TMPDIR is private too.
3. Checks scripts/demo: it installs into build-demo/prefix (the path the README puts on PATH),
   runs its master with -c demo, and takes DEMO_BIND, which the README documents.

Exit status 0 when every command succeeded, 1 otherwise (with the failing block's log).
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile


def sections(readme):
    """{heading: [code block text, ...]} for the level-2 headings."""
    out, heading, block, in_block = {}, None, [], False
    for line in readme.splitlines():
        if line.startswith("```"):
            if in_block:
                out.setdefault(heading, []).append("\n".join(block) + "\n")
                block = []
            in_block = not in_block
            continue
        if in_block:
            block.append(line)
        elif line.startswith("## "):
            heading = line[3:].strip()
    return out


def script_of(block, webdir, last=True):
    """The block as a bash script: substitutions, and a wait after each background master; the
    last block of a session waits for the masters it stopped."""
    lines = []
    for line in block.splitlines():
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:0", line)
        line = line.replace("/tmp/web", webdir)
        lines.append(line)
        command = line.split("#", 1)[0].strip()
        if command.endswith("&"):
            words = shlex.split(command[:-1])
            name = []
            if "-c" in words:
                name = ["-c", words[words.index("-c") + 1]]
            probe = " ".join(["einhornctl"] + name + ["status"])
            lines.append(
                "for i in $(seq 200); do %s >/dev/null 2>&1 && break; sleep 0.05; done" % probe)
    return "\n".join(lines) + ("\nwait\n" if last else "\n")


def run_session(name, script, env, cwd, log_dir):
    log = os.path.join(log_dir, re.sub(r"\W+", "-", name) + ".log")
    with open(log, "w") as out:
        proc = subprocess.run(["bash", "-e", "-x", "-c", script], env=env, cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, timeout=180)
    if proc.returncode != 0:
        print("FAIL: %s (exit %d); its log:" % (name, proc.returncode))
        print(open(log).read()[-6000:])
        return False
    print("ok: %s" % name)
    return True


def check_demo(demo, readme):
    ok = True
    text = open(demo).read()
    want = {
        "installs into build-demo/prefix": "build-demo" in text and "prefix=$root/$build/prefix"
        in text and "cmake --install" in text,
        "runs under -c demo": "exec einhorn-cpp -c demo" in text,
        "takes DEMO_BIND": "DEMO_BIND" in text,
        "README puts build-demo/prefix/bin on PATH":
            'export PATH="$PWD/build-demo/prefix/bin:$PATH"' in readme,
        "README documents DEMO_BIND": "DEMO_BIND=" in readme,
        "README talks to the demo with -c demo": "einhornctl -c demo status" in readme,
    }
    for what, good in want.items():
        print(("ok: demo: " if good else "FAIL: demo: ") + what)
        ok = ok and good
    if subprocess.run(["bash", "-n", demo]).returncode != 0:
        print("FAIL: demo: bash -n")
        ok = False
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--readme", default=os.path.join(root, "README.md"))
    ap.add_argument("--demo", default=os.path.join(root, "scripts", "demo"))
    args = ap.parse_args()
    readme = open(args.readme).read()
    blocks = sections(readme)
    ok = check_demo(args.demo, readme)

    with tempfile.TemporaryDirectory(prefix="einhorn-readme-") as tmp:
        prefix = os.path.join(tmp, "prefix")
        subprocess.run(["cmake", "--install", args.build, "--prefix", prefix], check=True,
                       stdout=subprocess.DEVNULL)
        tmpdir = os.path.join(tmp, "tmpdir")
        work = os.path.join(tmp, "work")
        os.mkdir(tmpdir)
        os.mkdir(work)
        env = dict(os.environ)
        env["PATH"] = os.path.join(prefix, "bin") + ":" + env.get("PATH", "/usr/bin:/bin")
        env["TMPDIR"] = tmpdir
        for var in ("EINHORN_SOCK_PATH", "EINHORN_SOCK_FD", "NOTIFY_SOCKET", "LISTEN_FDS"):
            env.pop(var, None)
        webdir = os.path.join(tmp, "web")

        resize = blocks.get("Resize a running pool", [])
        acks = blocks.get("Manual acks", [])
        upgrade = blocks.get("Upgrade the workers", [])
        reload_ = blocks.get("Upgrade the master (reload)", [])
        if not (resize and len(acks) >= 2 and upgrade and reload_):
            print("FAIL: README: a section this test runs is missing or has no command block")
            return 1
        worker = next(b for b in acks if b.startswith("#!/bin/sh"))
        with open(os.path.join(work, "worker.sh"), "w") as f:
            f.write(worker)
        acks_commands = next(b for b in acks if "einhorn-cpp" in b and b is not worker)
        sessions = [
            ("Resize a running pool", script_of(resize[0], webdir)),
            ("Manual acks", script_of(acks_commands, webdir)),
            ("Upgrade the workers, then reload",
             script_of(upgrade[0], webdir, last=False) + script_of(reload_[0], webdir)),
        ]
        for name, script in sessions:
            ok = run_session(name, script, env, work, tmp) and ok
        # A failed block may leave a master behind: stop whatever still has a socket here.
        for entry in os.listdir(tmpdir):
            if entry.endswith(".sock"):
                subprocess.run(["einhornctl", "-d", os.path.join(tmpdir, entry), "die"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
