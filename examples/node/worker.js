#!/usr/bin/env node
// A minimal HTTP worker for einhorn-cpp (or Stripe's Einhorn), Node.js built-ins only.
//
//   einhorn-cpp -n 4 -m manual -b 127.0.0.1:8080,r -- node examples/node/worker.js
//   curl 127.0.0.1:8080        ->  hello from 4242
//
// What a worker has to do, and how this one does it:
//  * Serve on the socket the master opened, never bind one itself: its fd number is in
//    EINHORN_FD_0 (systemd's convention, LISTEN_FDS with the first socket at fd 3, also works).
//    All the workers accept on that one socket and the kernel spreads connections among them.
//    server.listen({fd}) adopts an open listening socket (TCP or UNIX) instead of binding.
//  * Say "ready" once serving (for `-m manual`): connect to the master's command socket at
//    EINHORN_SOCK_PATH and write one line, {"command":"worker:ack","pid":<our pid>}.
//  * SIGUSR2 means "drain": stop accepting, finish the requests in hand, exit 0. The master
//    sends it on `einhornctl dec`, during upgrades and when it shuts down gently.
//  * SIGTERM (and SIGINT) mean "stop now": exit 0 at once, dropping any request in hand.
//
// Node.js 18 or later. Not for Node's own `cluster` module: einhorn-cpp is the cluster.
'use strict';

const http = require('node:http');
const net = require('node:net');

// A client that connects and says nothing may hold a connection this long (and so delay a drain).
const REQUEST_TIMEOUT_MS = 10000;

function listeningFd() {
  const env = process.env;
  if (env.EINHORN_FD_0 !== undefined) return Number.parseInt(env.EINHORN_FD_0, 10);
  if ((env.LISTEN_FDS ?? '0') !== '0' && env.LISTEN_PID === String(process.pid)) {
    return 3; // SD_LISTEN_FDS_START: systemd passes its sockets from fd 3 on
  }
  console.error('no listening socket: run me under einhorn-cpp with -b (EINHORN_FD_0) ' +
                'or with systemd socket activation (LISTEN_FDS, LISTEN_PID)');
  process.exit(2);
}

// Tells the master we are ready (needed with -m manual, ignored in timer mode).
function ack() {
  const path = process.env.EINHORN_SOCK_PATH;
  if (!path) return; // not under einhorn: nobody to tell
  // One line of JSON, which the master reads as YAML. A line without '%' or a newline needs no
  // escaping. The pid must be a number, not a string. The master sends no reply.
  const line = JSON.stringify({command: 'worker:ack', pid: process.pid}) + '\n';
  const control = net.createConnection(path, () => control.end(line));
  control.on('error', (err) => {
    console.error(`worker ${process.pid}: cannot ack on ${path}: ${err.message}`);
    process.exit(1);
  });
}

const server = http.createServer((req, res) => {
  const body = `hello from ${process.pid}\n`;
  res.writeHead(200, {
    'Content-Type': 'text/plain',
    'Content-Length': Buffer.byteLength(body),
    'Connection': 'close',
  });
  res.end(body);
});
server.requestTimeout = REQUEST_TIMEOUT_MS;
server.headersTimeout = REQUEST_TIMEOUT_MS;

const fd = listeningFd();
// libuv makes the fd non-blocking (shared with the sibling workers, who poll before accepting
// too). Node also calls listen() on it again, which keeps the socket and its queue but sets its
// backlog, for every worker, to Node's: 511 unless you pass {fd, backlog: N}. That replaces
// the master's -l, so pass the same number here if you set one.
server.listen({fd}, () => {
  ack();
  console.error(`worker ${process.pid} serving on fd ${fd}`);
});

process.on('SIGUSR2', () => {
  // close() stops accepting at once; its callback runs when the connections in hand are done.
  // Closing our handle of the listening socket leaves it open in the master and the sibling
  // workers, so pending connections go to them.
  server.close(() => {
    console.error(`worker ${process.pid} drained`);
    process.exit(0);
  });
  // Every response says "Connection: close", but a client may still hold an idle connection.
  server.closeIdleConnections();
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
