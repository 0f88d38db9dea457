"""An HTTP worker preloaded through einhorn_zygote (issue 19's zero-downtime check:
tests/bench/wrk_upgrades.sh with APP=python-zygote, and tests/e2e/preload_test.cc).

    einhorn-cpp --zygote -n 4 -m manual -b 127.0.0.1:8080,r -- \\
        python3 tests/bench/apps/zygote_http.py

Standard library only. load() (once per generation, in the zygote) reads the "code version"
from $ZYGOTE_HTTP_VERSION_FILE (default "v1") and says so on stderr:
    zygote_http: zygote ZPID loaded version V
Each worker (forked from that zygote, or exec'd without --zygote) says on stderr
    zygote_http: worker PID forked from zygote ZPID, version V, serving
then acks manually (worker:ack on $EINHORN_SOCK_PATH, or with -g on the fd in $EINHORN_SOCK_FD)
and answers GET / with
    hello from worker PID (zygote ZPID, version V)
over HTTP/1.1 with Connection: close. SIGUSR2 drains: it stops accepting, finishes the request
in hand and exits 0 (connections still in the shared backlog go to the other workers);
SIGTERM and SIGINT exit 0 at once. Knobs: --delay-ms N or ZYGOTE_HTTP_DELAY_MS (each answer
waits that long, so that drains have requests in flight), ZYGOTE_HTTP_BROKEN_DRAIN=1 (SIGUSR2 exits at once,
dropping the request in hand: how the e2e test checks that it notices a broken drain).
"""
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time

import einhorn_zygote

STATE = {}
REQUEST_TIMEOUT_SECONDS = 10


def say(text):
    sys.stderr.write("zygote_http: %s\n" % text)
    sys.stderr.flush()


def load():
    path = os.environ.get("ZYGOTE_HTTP_VERSION_FILE")
    version = "v1"
    if path:
        with open(path) as f:
            version = f.read().strip() or "v1"
    STATE["version"] = version
    STATE["zygote"] = os.getpid()  # in a forked worker: the zygote's pid, by the fork's copy
    if einhorn_zygote.is_zygote():
        say("zygote %d loaded version %s" % (os.getpid(), version))


def listening_socket():
    if "EINHORN_FD_0" in os.environ:
        fd = int(os.environ["EINHORN_FD_0"])
    elif os.environ.get("LISTEN_FDS", "0") != "0" and os.environ.get("LISTEN_PID") == str(os.getpid()):
        fd = 3
    else:
        sys.exit("zygote_http: no listening socket (EINHORN_FD_0 or LISTEN_FDS)")
    sock = socket.socket(fileno=fd)
    # Non-blocking: a worker that loses the race for a connection sees EAGAIN and goes back to
    # select() instead of blocking in accept(), deaf to a drain.
    sock.setblocking(False)
    return sock


def ack():
    line = json.dumps({"command": "worker:ack", "pid": os.getpid()}, separators=(",", ":"))
    channel = os.environ.get("EINHORN_SOCK_FD")
    if channel:  # -g: a connection of our own to the command socket, at that fd
        os.write(int(channel), line.encode() + b"\n")
        say("worker %d acked on EINHORN_SOCK_FD=%s" % (os.getpid(), channel))
        return
    path = os.environ.get("EINHORN_SOCK_PATH")
    if not path:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
        control.connect(path)
        control.sendall(line.encode() + b"\n")


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_SECONDS
    delay = 0.0

    def do_GET(self):
        if self.delay:
            time.sleep(self.delay)
        body = ("hello from worker %d (zygote %d, version %s)\n" %
                (os.getpid(), STATE["zygote"], STATE["version"])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format, *args):
        pass


def delay_ms(argv):
    """--delay-ms N on the command line (as einhorn-example-http's), else $ZYGOTE_HTTP_DELAY_MS."""
    text = os.environ.get("ZYGOTE_HTTP_DELAY_MS", "0") or "0"
    if "--delay-ms" in argv[:-1]:
        text = argv[argv.index("--delay-ms") + 1]
    return int(text)


def main():
    Hello.delay = delay_ms(sys.argv[1:]) / 1000.0
    server = http.server.HTTPServer(("", 0), Hello, bind_and_activate=False)
    server.socket.close()
    server.socket = listening_socket()

    def drain(signum, frame):
        # serve_forever() runs in this thread: shutdown() must be asked from another one. The
        # request in hand completes; serve_forever() returns within its poll interval.
        threading.Thread(target=server.shutdown, daemon=True).start()

    def stop_now(signum, frame):
        os._exit(0)

    broken = os.environ.get("ZYGOTE_HTTP_BROKEN_DRAIN") == "1"
    signal.signal(signal.SIGUSR2, stop_now if broken else drain)
    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGINT, stop_now)
    if STATE["zygote"] != os.getpid():
        say("worker %d forked from zygote %d, version %s, serving" %
            (os.getpid(), STATE["zygote"], STATE["version"]))
    else:
        say("worker %d exec'd, version %s, serving" % (os.getpid(), STATE["version"]))
    ack()
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(einhorn_zygote.serve(main, load=load))
