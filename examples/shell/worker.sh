#!/bin/sh
# shellcheck disable=SC2317  # drain and stop_now look unreachable: trap runs them
# A job-loop worker for einhorn-cpp (or Stripe's Einhorn) in POSIX shell.
#
#   einhorn-cpp -n 2 -m manual -- sh examples/shell/worker.sh
#
# This one is NOT an HTTP server: a shell script cannot accept() connections on an inherited
# listening socket, so it takes no -b. It shows the rest of the worker contract, for the kind of
# worker a shell script is good at: one that loops over jobs (from a queue, a spool directory,
# a database...).
#  * Say "ready" (for `-m manual`) with `einhornctl ack`, which must be on the PATH: it connects
#    to the master's command socket ($EINHORN_SOCK_PATH) and acks its parent process, this
#    shell. (Without einhornctl: any tool that can write the one line
#    {"command":"worker:ack","pid":<pid of this shell>} to that UNIX socket, e.g. socat.)
#  * SIGUSR2 means "drain": take no new job, finish the job in hand, exit 0. The master sends it
#    on `einhornctl dec`, during upgrades and when it shuts down gently.
#  * SIGTERM (and SIGINT) mean "stop now": kill the job in hand and exit 0 at once.
#
# JOB_SECONDS (default 1) sets how long the pretend job takes.

JOB_SECONDS=${JOB_SECONDS:-1}

# One unit of work. Replace it with yours. It runs in a subshell: $$ is still the worker's pid.
do_job() {
  sleep "$JOB_SECONDS"
}

draining=0
n=0    # jobs started
job=   # pid of the job in hand, if any

# A shell runs a trap only between commands, after the foreground command ends, or when a
# signal interrupts the `wait` builtin. That is why the job runs in the background below.
drain() {
  draining=1
  if [ -n "$job" ]; then
    echo "worker $$: draining: finishing job $n" >&2
  else
    echo "worker $$: draining" >&2
  fi
}
trap drain USR2
stop_now() {
  if [ -n "$job" ]; then
    kill "$job" 2>/dev/null
    echo "worker $$: stopped, job $n abandoned" >&2
  else
    echo "worker $$: stopped" >&2
  fi
  exit 0
}
trap stop_now TERM INT

# Starting up would go here (connect to the queue, warm caches...). Then: ready.
einhornctl ack || exit 1
echo "worker $$: ready" >&2

while [ "$draining" = 0 ]; do
  n=$((n + 1))
  do_job &
  job=$!
  # A trapped signal makes `wait` return early (status > 128) while the job keeps running:
  # wait again until the job has really ended.
  while kill -0 "$job" 2>/dev/null; do wait "$job"; done
  job=
  echo "worker $$: job $n done" >&2
done
echo "worker $$: drained after $n jobs" >&2
exit 0
