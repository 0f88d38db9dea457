# frozen_string_literal: true

# The consumers: one class per tube, each with #perform(payload). bin/work reserves a job, looks
# up the consumer of the job's tube in CONSUMERS and calls it; an exception means "failed, try
# again later" (the job is released with a delay), returning means done (the job is deleted).
# Replace them with yours: a real one would send the welcome email or render the thumbnail.
#
# Payloads are JSON objects. Every key is optional:
#   "id"   a job id, echoed in the results file (below)
#   "ms"   how long the job takes (emails: sleeps that long, like a job waiting on an API;
#          default JOBS_SLEEP_MS or 5)
#   "work" CPU-bound units of work (thumbnails: that many rounds of SHA-256 over 1 KiB;
#          default JOBS_CPU_WORK or 250: a few ms)
#   "fail" fail that many first attempts (to see the release-with-delay path)
#
# With JOBS_RESULTS=PATH set, every job appends two lines to PATH, each with one write(2) on a
# file opened O_APPEND, so that lines of concurrent workers never interleave:
#   start ID PID START_NS              before the work
#   done ID PID START_NS END_NS        after it, before the job is deleted from the queue
# (CLOCK_MONOTONIC nanoseconds, comparable across processes). tests/e2e/jobs_test.cc reads them.

require "digest"

module Jobs
  # Appends the start and done lines of JOBS_RESULTS (nothing without it).
  module Recorder
    @file = nil

    def self.file
      path = ENV["JOBS_RESULTS"]
      return nil if path.nil? || path.empty?

      @file ||= File.open(path, File::WRONLY | File::APPEND | File::CREAT, 0o644)
    end

    def self.now_ns
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
    end

    # Runs the block between a start and a done line. No done line if it raises.
    def self.around(id)
      start = now_ns
      f = file
      f&.syswrite("start #{id} #{Process.pid} #{start}\n")
      yield
      f&.syswrite("done #{id} #{Process.pid} #{start} #{now_ns}\n")
    end
  end

  class Failed < StandardError; end

  class Consumer
    def initialize(attempt)
      @attempt = attempt # 1 for the first reservation of the job, 2 after a release...
    end

    def perform(payload)
      Recorder.around(payload.fetch("id", "-")) do
        raise Failed, "failing attempt #{@attempt} as asked" if @attempt <= payload.fetch("fail", 0).to_i

        work(payload)
      end
    end
  end

  # An I/O-bound job: waits, like a job calling a mail API.
  class WelcomeEmail < Consumer
    def work(payload)
      ms = payload.fetch("ms", Integer(ENV.fetch("JOBS_SLEEP_MS", "5"))).to_f
      deadline = Recorder.now_ns + (ms * 1_000_000).to_i
      # A signal handler (USR2) may wake sleep early: sleep until the deadline really passed.
      while (left = deadline - Recorder.now_ns) > 0
        sleep(left / 1e9)
      end
    end
  end

  # A CPU-bound job: hashes, like a job resizing an image.
  class Thumbnail < Consumer
    BLOCK = ("x" * 1024).freeze

    def work(payload)
      rounds = payload.fetch("work", Integer(ENV.fetch("JOBS_CPU_WORK", "250"))).to_i
      digest = BLOCK
      rounds.times { digest = Digest::SHA256.digest(digest + BLOCK) }
      digest
    end
  end

  # tube => consumer class. bin/work watches exactly these tubes.
  CONSUMERS = {
    "emails" => WelcomeEmail,
    "thumbnails" => Thumbnail,
  }.freeze
end
