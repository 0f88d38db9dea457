#!/usr/bin/env python3
"""A minimal HTTP worker for einhorn-cpp (or Stripe's Einhorn), standard library only.

    einhorn-cpp -n 4 -m manual -b 127.0.0.1:8080,r -- python3 examples/python/worker.py
    curl 127.0.0.1:8080        ->  hello from 4242

What a worker has to do, and how this one does it:
  * Serve on the socket the master opened, never bind one itself: its fd number is in
    EINHORN_FD_0 (systemd's convention, LISTEN_FDS with the first socket at fd 3, also works).
    All the workers accept on that one socket and the kernel spreads connections among them.
  * Say "ready" once serving. Under `-m notify` (NOTIFY_SOCKET is set) the systemd way: one
    datagram "READY=1" to NOTIFY_SOCKET, as any systemd service does. Under `-m manual`:
    connect to the master's command socket at EINHORN_SOCK_PATH and write one line,
    {"command":"worker:ack","pid":<our pid>}.
  * SIGUSR2 means "drain": stop accepting, finish the request in hand, exit 0. The master
    sends it on `einhornctl dec`, during upgrades and when it shuts down gently.
  * SIGTERM (and SIGINT) mean "stop now": exit 0 at once, dropping any request in hand.

Python 3.7 or later. Requests are served one at a time, in the order they are accepted.
"""

import http.server
import json
import os
import signal
import socket
import sys
import threading

# A client that connects and says nothing may hold the worker this long (and so delay a drain).
REQUEST_TIMEOUT_SECONDS = 10


def listening_socket():
    """Wraps the inherited listening socket; exits with a message if there is none."""
    if "EINHORN_FD_0" in os.environ:
        fd = int(os.environ["EINHORN_FD_0"])
    elif (os.environ.get("LISTEN_FDS", "0") != "0"
          and os.environ.get("LISTEN_PID") == str(os.getpid())):
        fd = 3  # SD_LISTEN_FDS_START: systemd passes its sockets from fd 3 on
    else:
        sys.exit("no listening socket: run me under einhorn-cpp with -b (EINHORN_FD_0) "
                 "or with systemd socket activation (LISTEN_FDS, LISTEN_PID)")
    # fileno= adopts the fd as it is (family and type are read from the socket): no bind().
    sock = socket.socket(fileno=fd)
    # Every worker wakes up for a new connection but only one gets it. Non-blocking, the others
    # see EAGAIN and go back to waiting instead of blocking in accept(), deaf to a drain.
    # (O_NONBLOCK is shared with the sibling workers, which do the same.)
    sock.setblocking(False)
    return sock


def sd_notify(message):
    """systemd's notify protocol: one datagram to NOTIFY_SOCKET ('@' is the abstract
    namespace). Returns False when there is no socket to tell."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message.encode(), address)
    return True


def ack():
    """Tells the master we are ready: READY=1 under -m notify, worker:ack under -m manual
    (either is ignored in timer mode)."""
    if sd_notify("READY=1\nSTATUS=serving"):
        return
    path = os.environ.get("EINHORN_SOCK_PATH")
    if not path:
        return  # not under einhorn: nobody to tell
    # One line of JSON, which the master reads as YAML. A line without '%' or a newline needs
    # no escaping. The pid must be an integer, not a string.
    line = json.dumps({"command": "worker:ack", "pid": os.getpid()}, separators=(",", ":"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
        control.connect(path)
        control.sendall(line.encode() + b"\n")
    # The master sends no reply to an ack; it closes the connection.


class Hello(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, then the connection is closed.
    protocol_version = "HTTP/1.0"
    timeout = REQUEST_TIMEOUT_SECONDS

    def do_GET(self, send_body=True):
        body = f"hello from {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET(send_body=False)

    do_POST = do_GET  # any path, GET or POST (a request body is not read)

    def log_message(self, format, *args):
        pass  # one line per request on the master's stderr is too chatty for a demo


def main():
    # HTTPServer wants to bind a socket of its own: skip that and hand it the inherited one.
    server = http.server.HTTPServer(("", 0), Hello, bind_and_activate=False)
    server.socket.close()
    server.socket = listening_socket()

    def drain(signum, frame):
        sd_notify("STOPPING=1")
        # shutdown() waits for serve_forever() to return, and serve_forever() runs in this very
        # (main) thread, so ask from another thread. The request in hand, if any, completes;
        # serve_forever() notices within its poll interval and returns.
        threading.Thread(target=server.shutdown, daemon=True).start()

    def stop_now(signum, frame):
        # At once, without unwinding or finalizing the interpreter: there is nothing to clean
        # up that the kernel does not (it closes our sockets), and nothing left to go wrong.
        os._exit(0)

    signal.signal(signal.SIGUSR2, drain)
    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGINT, stop_now)

    # From here on a connection waits in the socket's backlog until serve_forever() takes it,
    # so we can say we are ready.
    ack()
    print(f"worker {os.getpid()} serving on fd {server.socket.fileno()}", file=sys.stderr,
          flush=True)
    server.serve_forever(poll_interval=0.1)
    # Closing our copy of the listening socket does not close it for the others: the master
    # and the sibling workers keep theirs, and pending connections go to them.
    server.server_close()
    print(f"worker {os.getpid()} drained", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
