#!/usr/bin/env ruby
# frozen_string_literal: true

# A minimal HTTP worker for einhorn-cpp (or Stripe's Einhorn), standard library only (no gems,
# not even the einhorn gem: the protocol is one line on a UNIX socket).
#
#   einhorn-cpp -n 4 -m manual -b 127.0.0.1:8080,r -- ruby examples/ruby/worker.rb
#   curl 127.0.0.1:8080        ->  hello from 4242
#
# What a worker has to do, and how this one does it:
#  * Serve on the socket the master opened, never bind one itself: its fd number is in
#    EINHORN_FD_0 (systemd's convention, LISTEN_FDS with the first socket at fd 3, also works).
#    All the workers accept on that one socket and the kernel spreads connections among them.
#  * Say "ready" once serving (for `-m manual`): connect to the master's command socket at
#    EINHORN_SOCK_PATH and write one line, {"command":"worker:ack","pid":<our pid>}.
#  * SIGUSR2 means "drain": stop accepting, finish the request in hand, exit 0. The master
#    sends it on `einhornctl dec`, during upgrades and when it shuts down gently.
#  * SIGTERM (and SIGINT) mean "stop now": exit 0 at once, dropping any request in hand.
#
# Ruby 2.7 or later. Requests are served one at a time, in the order they are accepted.

require "io/wait"
require "socket"

# A client that connects and says nothing may hold the worker this long (and so delay a drain).
REQUEST_TIMEOUT = 10 # seconds
MAX_REQUEST_BYTES = 64 * 1024

def listening_socket
  fd =
    if ENV.key?("EINHORN_FD_0")
      Integer(ENV["EINHORN_FD_0"])
    elsif ENV.fetch("LISTEN_FDS", "0") != "0" && ENV["LISTEN_PID"] == Process.pid.to_s
      3 # SD_LISTEN_FDS_START: systemd passes its sockets from fd 3 on
    else
      abort "no listening socket: run me under einhorn-cpp with -b (EINHORN_FD_0) " \
            "or with systemd socket activation (LISTEN_FDS, LISTEN_PID)"
    end
  # Adopts the fd as it is, whatever its address family: no bind().
  Socket.for_fd(fd)
end

# Tells the master we are ready (needed with -m manual, ignored in timer mode).
def ack
  path = ENV["EINHORN_SOCK_PATH"] or return # not under einhorn: nobody to tell
  # One line of JSON, which the master reads as YAML. A line without '%' or a newline needs no
  # escaping. The pid must be an integer, not a string. The master sends no reply.
  UNIXSocket.open(path) do |control|
    control.write(%({"command":"worker:ack","pid":#{Process.pid}}\n))
  end
end

# Reads one request (up to the blank line after the headers) and answers it. Any path, any
# method; the request body, if any, is not read.
def serve(client)
  request = +""
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + REQUEST_TIMEOUT
  until request.include?("\r\n\r\n")
    left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
    return if left <= 0 || request.bytesize > MAX_REQUEST_BYTES
    next unless client.wait_readable(left)

    chunk = client.read_nonblock(4096, exception: false)
    return if chunk.nil? # the client hung up
    request << chunk unless chunk == :wait_readable
  end
  body = "hello from #{Process.pid}\n"
  client.write("HTTP/1.0 200 OK\r\n" \
               "Content-Type: text/plain\r\n" \
               "Content-Length: #{body.bytesize}\r\n" \
               "Connection: close\r\n" \
               "\r\n#{body}")
rescue SystemCallError, IOError
  # The client went away (EPIPE, ECONNRESET...): its problem, not ours.
ensure
  client.close
end

listener = listening_socket

# Trap handlers only record what happened; the loop below acts on it. The self-pipe wakes the
# loop from IO.select at once (the same trick as Unicorn's).
draining = false
wake_r, wake_w = IO.pipe
trap("USR2") do
  draining = true
  wake_w.write_nonblock(".", exception: false)
end
# exit raises SystemExit in the main thread: `ensure` clauses still close the sockets.
trap("TERM") { exit(0) }
trap("INT") { exit(0) }

# From here on a connection waits in the socket's backlog until we accept it, so we are ready.
ack
warn "worker #{Process.pid} serving on fd #{listener.fileno}"

until draining
  readable, = IO.select([listener, wake_r])
  next unless readable.include?(listener)

  # Every worker wakes up for a new connection but only one gets it: the others see EAGAIN
  # (:wait_readable) and go back to IO.select instead of blocking in accept(), deaf to a drain.
  begin
    result = listener.accept_nonblock(exception: false)
  rescue Errno::ECONNABORTED, Errno::EPROTO
    next # the client gave up while waiting in the backlog
  end
  next if result == :wait_readable

  client, _address = result
  serve(client) # a USR2 meanwhile lets this request finish, then ends the loop
end

# Closing our copy of the listening socket does not close it for the others: the master and the
# sibling workers keep theirs, and pending connections go to them.
listener.close
warn "worker #{Process.pid} drained"
