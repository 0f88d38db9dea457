"""The Celery app and its tasks, shared by bin/work (the worker) and bin/produce (the producer).

Replace the tasks with yours: a real one would send the welcome email or render the thumbnail.

The configuration is what makes a job queue safe to resize and upgrade under einhorn-cpp:
  * task_acks_late: a message is acknowledged after its task ran, not when it was received. A
    worker killed mid-job (SIGKILL, OOM) leaves its message unacknowledged, and the redis
    transport puts it back on the queue once it has been unacknowledged for longer than the
    visibility timeout (CELERY_VISIBILITY_TIMEOUT, below). Jobs therefore run at least once:
    make them safe to run twice.
  * worker_prefetch_multiplier 1 with the solo pool (bin/work): a worker holds one message at a
    time, the one it is running, so a drained or killed worker strands nothing else.

With JOBS_RESULTS=PATH set, every job appends two lines to PATH, each with one write(2) on a file
opened O_APPEND, so that lines of concurrent workers never interleave:
  start ID PID START_NS              before the work
  done ID PID START_NS END_NS        after it, before the message is acknowledged
(CLOCK_MONOTONIC nanoseconds, comparable across processes). tests/e2e/celery_test.cc reads them.
"""

import hashlib
import os
import time

from celery import Celery

BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
QUEUE = "jobs"  # the redis list the jobs wait in (LLEN jobs: how many are waiting)
# Seconds a message may stay unacknowledged before redis hands it to another worker. It must
# be longer than any job runs, or a slow job runs twice.
VISIBILITY_TIMEOUT = float(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))

app = Celery("jobs", broker=BROKER_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
    task_ignore_result=True,  # no result backend: a job's effect is its own business
    # No pidbox: no broadcast channel to keep open; `celery inspect` is not needed here.
    worker_enable_remote_control=False,
    # Keep our own stderr lines plain; Celery's log still goes to stderr.
    worker_redirect_stdouts=False,
)

_results = None


def _results_fd():
    global _results
    path = os.environ.get("JOBS_RESULTS")
    if not path:
        return None
    if _results is None:
        _results = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return _results


def _recorded(job_id, work):
    """Runs work() between a start and a done line. No done line if it raises."""
    fd = _results_fd()
    start = time.monotonic_ns()
    if fd is not None:
        os.write(fd, f"start {job_id} {os.getpid()} {start}\n".encode())
    work()
    if fd is not None:
        os.write(fd, f"done {job_id} {os.getpid()} {start} {time.monotonic_ns()}\n".encode())


@app.task(name="jobs.email")
def email(job_id, ms=None):
    """An I/O-bound job: waits, like a job calling a mail API (ms, default JOBS_SLEEP_MS or 5)."""
    if ms is None:
        ms = float(os.environ.get("JOBS_SLEEP_MS", "5"))

    def wait():
        # time.sleep resumes after a signal handler (SIGUSR2 only sets a flag), so this waits
        # the whole time even while a drain is asked for.
        time.sleep(ms / 1000)

    _recorded(job_id, wait)


@app.task(name="jobs.thumbnail")
def thumbnail(job_id, work=None):
    """A CPU-bound job: hashes, like a job resizing an image (work rounds of SHA-256 over 1 KiB,
    default JOBS_CPU_WORK or 250)."""
    rounds = int(work if work is not None else os.environ.get("JOBS_CPU_WORK", "250"))
    block = b"x" * 1024

    def hash_rounds():
        digest = block
        for _ in range(rounds):
            digest = hashlib.sha256(digest + block).digest()

    _recorded(job_id, hash_rounds)


TASKS = {"emails": email, "thumbnails": thumbnail}
