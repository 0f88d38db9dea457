#!/usr/bin/env ruby
# frozen_string_literal: true

# Einhorn's `-p PATH` for einhorn-cpp: the zygote that einhorn-cpp -p runs as
#
#   ruby einhorn-preload.rb [--gc-before-fork] [--command-name NAME] [--verbosity N] \
#        PATH -- CMD [ARGS...]
#
# It does what Ruby Einhorn 1.1.1's master does with -p (Einhorn.preload, Command.spinup):
# sets ARGV to the worker's, then `load`s PATH if it exists and does not end in .rb, else
# `require`s it (with --gc-before-fork, on the require branch only: Process.warmup where Ruby has
# it, else GC.start x4 and GC.compact), logging the same lines. If that worked and einhorn_main
# is defined, each worker is forked from here, sets $0 and ARGV as Einhorn does, reseeds the
# RNGs and calls einhorn_main. Otherwise ("Proceeding with postload") each worker forked from
# here execs CMD, as an exec'd Einhorn worker. Either way the worker is the master's child
# (protocol v1, man einhorn-zygote(7)). Without EINHORN_ZYGOTE_FD it execs CMD at once.
#
# Differences from Einhorn, by design: the lines are tagged [ZYGOTE pid] (this process is not
# the master); a SyntaxError or other non-StandardError in PATH, which crashes Einhorn's master,
# is reported as a load failure (the zygote exits 1: einhorn-cpp fails to start, or rolls the
# upgrade back).

begin
  require_relative "einhorn_zygote"
rescue LoadError
  require "einhorn_zygote"
end

module EinhornPreload
  USAGE = "usage: ruby einhorn-preload.rb [--gc-before-fork] [--command-name NAME] " \
          "[--verbosity 0|1|2] PATH -- CMD [ARGS...]"

  class << self
    attr_accessor :verbosity, :whatami, :cmd, :orig_cmd, :cmd_name, :path, :gc_before_fork,
                  :preloaded
  end
  self.verbosity = 1
  self.whatami = :zygote

  module_function

  def log_tag
    whatami == :worker ? "[WORKER #{$$}]" : "[ZYGOTE #{$$}]"
  end

  def log_debug(msg)
    warn("#{log_tag} DEBUG: #{msg}\n") if verbosity <= 0
    $stderr.flush
  end

  def log_info(msg)
    warn("#{log_tag} INFO: #{msg}\n") if verbosity <= 1
    $stderr.flush
  end

  def log_error(msg)
    warn("#{log_tag} ERROR: #{msg}\n") if verbosity <= 2
    $stderr.flush
  end

  def usage(problem)
    warn("einhorn-preload: #{problem}\n#{USAGE}")
    exit(2)
  end

  def parse(argv)
    args = argv.dup
    while (word = args.shift)
      case word
      when "--gc-before-fork" then self.gc_before_fork = true
      when "--command-name" then self.cmd_name = args.shift || usage("--command-name needs a NAME")
      when "--verbosity"
        v = args.shift
        usage("--verbosity needs 0, 1 or 2") unless %w[0 1 2].include?(v)
        self.verbosity = v.to_i
      when "--" then usage("PATH is missing")
      else
        usage("unknown option #{word}") if word.start_with?("-")
        self.path = word
        break
      end
    end
    usage("PATH is missing") if path.nil? || path.empty?
    usage("-- CMD is missing after PATH") unless args.shift == "--" && !args.empty?
    self.orig_cmd = args
    self.cmd = args.dup
    cmd[0] = which(cmd[0])
  end

  # Einhorn.which: a word with a slash must exist; else the first PATH entry where it exists.
  def which(word)
    if word.include?("/")
      return word if File.exist?(word)

      raise "Could not find #{word}"
    end
    ENV.fetch("PATH", "").split(":").each do |dir|
      abs = File.join(dir, word)
      return abs if File.exist?(abs)
    end
    raise "Could not find #{word} in PATH"
  end

  def script?(file)
    File.open(file) { |f| f.read(2) == "#!" }
  rescue SystemCallError
    false
  end

  def worker_ps_name
    cmd_name ? "ruby #{cmd_name}" : orig_cmd.join(" ")
  end

  # Einhorn.set_argv: ARGV is the command's arguments after the script (after `ruby SCRIPT` when
  # the command is ruby).
  def set_argv(set_ps_name)
    idx = 0
    if %r{(^|/)ruby$}.match?(cmd[0])
      idx = 1
    elsif !script?(cmd[0])
      log_info("WARNING: Going to set $0 to #{cmd[idx]}, but it doesn't look like a script")
    end
    $0 = worker_ps_name if set_ps_name
    ARGV[0..-1] = cmd[idx + 1..-1]
    log_info("Set#{" $0 = #{$0.inspect}, " if set_ps_name} ARGV = #{ARGV.inspect}")
  end

  # Einhorn.preload. Returns true when einhorn_main is there to call.
  def preload
    set_argv(false)
    begin
      if !path.end_with?(".rb") && File.exist?(path)
        log_info("Loading #{path} (if this hangs, make sure your code can be properly loaded as a library)")
        load path
      else
        log_info("Requiring #{path} (if this hangs, make sure your code can be properly loaded as a library)")
        require path
        warm_up if gc_before_fork
      end
    rescue StandardError, LoadError => e
      log_info("Proceeding with postload -- could not load #{path}: #{e} (#{e.class})\n  #{e.backtrace.join("\n  ")}")
      false
    else
      if defined?(einhorn_main)
        log_info("Successfully loaded #{path}")
        true
      else
        log_info("Proceeding with postload -- loaded #{path}, but no einhorn_main method was defined")
        false
      end
    end
  end

  # --gc-before-fork (Einhorn 1.1.1): Process.warmup where Ruby has it (3.3+), else promote
  # every object to the old generation and compact, so that workers share the pages.
  def warm_up
    if Process.respond_to?(:warmup)
      Process.warmup
      return
    end
    log_info("Starting GC to improve copy-on-write memory sharing")
    GC.start
    3.times { GC.start(full_mark: false) }
    GC.compact if GC.respond_to?(:compact)
    log_info("Finished GC after preloading")
  end

  def exec_command
    Kernel.exec([cmd[0], cmd[0]], *cmd[1..-1], close_others: false)
  end

  def run_worker
    self.whatami = :worker
    if preloaded
      log_info("About to tear down Einhorn state and run einhorn_main")
      set_argv(true)
      EinhornZygote.reseed_random
      einhorn_main
      exit(0)
    end
    log_info("About to exec #{cmd.inspect}")
    exec_command
  end

  def main(argv)
    begin
      parse(argv)
    rescue RuntimeError => e
      log_error(e.message)
      exit(1) unless EinhornZygote.zygote?
      sock = EinhornZygote.socket_from_env
      EinhornZygote.fail_load(sock, e)
    end
    exec_command unless EinhornZygote.zygote?

    sock = EinhornZygote.socket_from_env
    $0 = "einhorn zygote: #{worker_ps_name}"
    begin
      self.preloaded = preload
    rescue Exception => e # rubocop:disable Lint/RescueException: SyntaxError and the like
      EinhornZygote.fail_load(sock, e)
    end
    EinhornZygote.ready(sock, {"preloaded" => preloaded})
    EinhornZygote.serve_requests(sock)
    run_worker
  end
end

EinhornPreload.main(ARGV)
