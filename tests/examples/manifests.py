#!/usr/bin/env python3
"""Checks examples/kubernetes and examples/nomad against the real einhorn-cpp binary.

No cluster is available to the tests, so this checks what can go wrong without one: each file
parses; the einhorn-cpp config it carries passes `einhorn-cpp --check-config` (the worker
command replaced by one that exists here); and the numbers the orchestrator and the master must
agree on do agree: probe paths and ports against metrics_listen, the container ports against
the bind, the stop budget (preStop / shutdown_delay + signal_timeout + a margin) against the
orchestrator's SIGKILL deadline, the stop signal against the one that drains.

Usage: manifests.py --binary build/einhorn-cpp --worker build/einhorn-example-http
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARGIN_S = 5  # the master must kill a straggler and exit this long before the orchestrator
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    print(("ok   " if ok else "FAIL ") + what)


def effective_settings(binary, config_text, worker):
    """The settings einhorn-cpp would run with, from its own --check-config."""
    config = yaml.safe_load(config_text)
    config["command"] = [worker]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(config, f)
        path = f.name
    try:
        run = subprocess.run([binary, "--check-config", path], capture_output=True, text=True,
                             timeout=30)
    finally:
        os.unlink(path)
    check(run.returncode == 0, "einhorn-cpp --check-config accepts the config: " +
          (run.stderr.strip() or "exit 0"))
    return yaml.safe_load(run.stdout) if run.returncode == 0 else {}


def port_of(address):
    m = re.fullmatch(r"(?:\[[^\]]*\]|[^:\[\]]*):(\d+)(?:,.*)?", address or "")
    return int(m.group(1)) if m else None


def seconds(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text))
    if not m:
        raise ValueError("not a duration: %r" % text)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def check_master_settings(s, where):
    check(s.get("metrics_listen") is not None, where + ": metrics_listen is set (the probes)")
    check(s.get("signal_timeout") is not None,
          where + ": signal_timeout is set (the master, not the orchestrator, kills stragglers)")
    check(bool(s.get("bind")), where + ": binds a socket")


def check_kubernetes(binary, worker):
    path = os.path.join(ROOT, "examples/kubernetes/einhorn-cpp.yaml")
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    kinds = {d["kind"]: d for d in docs}
    check(set(kinds) == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"},
          "kubernetes: ConfigMap, Deployment, Service and PodDisruptionBudget, got %s" %
          sorted(kinds))
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    check(args[:1] == ["--config"] and len(args) == 2, "kubernetes: args are --config FILE")
    config_path = args[1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    volume = volumes.get(mounts.get(os.path.dirname(config_path)), {})
    cm = kinds["ConfigMap"]
    check(volume.get("configMap", {}).get("name") == cm["metadata"]["name"],
          "kubernetes: %s is mounted from the ConfigMap" % os.path.dirname(config_path))
    text = cm["data"].get(os.path.basename(config_path))
    check(text is not None, "kubernetes: the ConfigMap has " + os.path.basename(config_path))
    s = effective_settings(binary, text or "{}", worker)
    check_master_settings(s, "kubernetes")
    check(os.path.dirname(s.get("socket_path", "")) in mounts,
          "kubernetes: the command socket's directory is a volume (einhornctl in the pod)")

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports.get("metrics") == port_of(s.get("metrics_listen")),
          "kubernetes: containerPort metrics is metrics_listen's port")
    check(ports.get("http") == port_of((s.get("bind") or [""])[0]),
          "kubernetes: containerPort http is the bound port")
    for probe, want in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        port = ports.get(get.get("port"), get.get("port"))
        check(get.get("path") == want and port == port_of(s.get("metrics_listen")),
              "kubernetes: %s is GET %s on the metrics port" % (probe, want))
    check(kinds["Service"]["spec"]["ports"][0]["targetPort"] in ports,
          "kubernetes: the Service targets a named container port")

    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    pause = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    grace = pod["terminationGracePeriodSeconds"]
    budget = pause + (s.get("signal_timeout") or 1e9) + MARGIN_S
    check(grace >= budget, "kubernetes: terminationGracePeriodSeconds %s >= preStop %s + -t %s + %s" %
          (grace, pause, s.get("signal_timeout"), MARGIN_S))
    rolling = kinds["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    check(rolling.get("maxUnavailable") == 0,
          "kubernetes: a rollout never takes a pod out before its replacement is ready")
    dockerfile = open(os.path.join(ROOT, "packaging/Dockerfile")).read()
    check(re.search(r"^STOPSIGNAL SIGINT$", dockerfile, re.M) is not None,
          "kubernetes: the image's STOPSIGNAL is SIGINT (a drain), packaging/Dockerfile")


# --- a small HCL reader: the subset Nomad job files use (blocks with labels, attributes,
# strings, numbers, booleans, lists, heredocs, comments). Blocks become
# {"_blocks": [(type, labels, body)], name: value...}.
TOKEN = re.compile(r'''
    (?P<space>\s+) | (?P<comment>(\#|//)[^\n]*) |
    (?P<heredoc><<-?(?P<tag>[A-Za-z_]+)\n(?P<body>.*?)\n\s*(?P=tag)(?=\n)) |
    (?P<string>"(?:[^"\\\n]|\\.)*") | (?P<number>-?\d+(?:\.\d+)?) |
    (?P<ident>[A-Za-z_][A-Za-z0-9_\-]*) | (?P<punct>[{}\[\]=,])
''', re.X | re.S)


def hcl_tokens(text):
    pos = 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise ValueError("HCL: cannot read at %r" % text[pos:pos + 30])
        pos = m.end()
        kind = m.lastgroup if m.lastgroup not in ("tag", "body") else "heredoc"
        if kind in ("space", "comment"):
            continue
        if kind == "heredoc":
            yield ("value", m.group("body") + "\n")
        elif kind == "string":
            yield ("value", bytes(m.group()[1:-1], "utf-8").decode("unicode_escape"))
        elif kind == "number":
            yield ("value", float(m.group()) if "." in m.group() else int(m.group()))
        elif kind == "ident" and m.group() in ("true", "false"):
            yield ("value", m.group() == "true")
        else:
            yield (kind, m.group())


def hcl_parse(text):
    tokens = list(hcl_tokens(text)) + [("end", None)]
    pos = 0

    def take(kind=None, value=None):
        nonlocal pos
        t = tokens[pos]
        if (kind and t[0] != kind) or (value and t[1] != value):
            raise ValueError("HCL: expected %s %s, got %r" % (kind, value or "", t))
        pos += 1
        return t

    def value():
        if tokens[pos] == ("punct", "["):
            take()
            items = []
            while tokens[pos] != ("punct", "]"):
                items.append(value())
                if tokens[pos] == ("punct", ","):
                    take()
            take("punct", "]")
            return items
        return take("value")[1]

    def body(closing):
        out = {"_blocks": []}
        while tokens[pos] != closing:
            name = take("ident")[1]
            if tokens[pos] == ("punct", "="):
                take()
                out[name] = value()
                continue
            labels = []
            while tokens[pos][0] == "value":
                labels.append(take()[1])
            take("punct", "{")
            out["_blocks"].append((name, labels, body(("punct", "}"))))
            take("punct", "}")
        return out

    return body(("end", None))


def blocks(b, kind):
    return [(labels, body) for (k, labels, body) in b["_blocks"] if k == kind]


def check_nomad(binary, worker):
    path = os.path.join(ROOT, "examples/nomad/einhorn-cpp.nomad.hcl")
    root = hcl_parse(open(path).read())
    ((_, job),) = blocks(root, "job")
    ((_, update),) = blocks(job, "update")
    check(update.get("health_check") == "checks",
          "nomad: a rollout waits for the new allocation's checks")
    ((_, group),) = blocks(job, "group")
    ((_, task),) = blocks(group, "task")
    check(task.get("driver") == "docker", "nomad: the docker driver")
    check(task.get("kill_signal") == "SIGINT", "nomad: kill_signal SIGINT (a drain)")
    ((_, config),) = blocks(task, "config")
    args = config["args"]
    check(args[:1] == ["--config"] and len(args) == 2, "nomad: args are --config FILE")
    (template,) = [t for _, t in blocks(task, "template")
                   if "/" + t["destination"] == args[1]]
    s = effective_settings(binary, template["data"], worker)
    check_master_settings(s, "nomad")

    ((_, network),) = blocks(group, "network")
    ports = {labels[0]: b.get("to") for labels, b in blocks(network, "port")}
    check(ports.get("metrics") == port_of(s.get("metrics_listen")),
          "nomad: port metrics maps to metrics_listen's port")
    check(ports.get("http") == port_of((s.get("bind") or [""])[0]),
          "nomad: port http maps to the bound port")
    ((_, service),) = blocks(group, "service")
    checks = {c["path"]: c for _, c in blocks(service, "check")}
    for path_, name in (("/readyz", "readiness"), ("/livez", "liveness")):
        c = checks.get(path_, {})
        check(c.get("type") == "http" and c.get("port") == "metrics",
              "nomad: the %s check is GET %s on the metrics port" % (name, path_))
    check(len(blocks(checks.get("/livez", {"_blocks": []}), "check_restart")) == 1,
          "nomad: a failing /livez restarts the task")
    budget = (s.get("signal_timeout") or 1e9) + MARGIN_S
    check(seconds(task["kill_timeout"]) >= budget,
          "nomad: kill_timeout %s >= -t %s + %s" % (task["kill_timeout"],
                                                   s.get("signal_timeout"), MARGIN_S))
    check(seconds(task.get("shutdown_delay", "0s")) > 0,
          "nomad: shutdown_delay lets discovery forget the allocation before the drain")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--worker", required=True)
    a = ap.parse_args()
    check_kubernetes(a.binary, a.worker)
    check_nomad(a.binary, a.worker)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
