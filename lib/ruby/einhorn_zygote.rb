# frozen_string_literal: true

# Preload for einhorn-cpp: load the application once, fork the workers from it.
#
#   require "einhorn_zygote"
#   EinhornZygote.serve(load: -> { require "active_support/all" }) do
#     ... one worker ...
#   end
#
# When EINHORN_ZYGOTE_FD is not set (the worker was exec'd as usual), serve calls load and the
# block and returns the block's value. When it is set, this process is einhorn-cpp's zygote
# (protocol v1, man einhorn-zygote(7)): serve calls load, says ready, then forks one worker per
# request of the master; in each worker serve returns the block's value, as in the exec'd case.
# The zygote itself never returns: it exits 0 when the master closes the socket, and dies on
# SIGTERM. Einhorn's `-p PATH` (einhorn-cpp -p) is einhorn-preload.rb, built on this.
#
# Standard library only (socket, json); Ruby 2.7+ (Debian 12's 3.1 is the one tested).

require "socket"
require "json"
require "fcntl"

module EinhornZygote
  PROTOCOL_VERSION = 1
  ENV_FD = "EINHORN_ZYGOTE_FD"
  MAX_MESSAGE = 65_536

  # The signals an application may not trap in Ruby (the VM owns them).
  UNTRAPPABLE = %w[KILL STOP VTALRM SEGV BUS ILL FPE].freeze

  class ProtocolError < StandardError; end

  module_function

  def zygote?
    !ENV.fetch(ENV_FD, "").empty?
  end

  def log(text)
    $stderr.write("einhorn_zygote[#{Process.pid}]: #{text}\n")
    $stderr.flush
  rescue StandardError
    nil
  end

  # Runs the block as a worker: directly when exec'd, once per forked worker under a zygote.
  def serve(load: nil, &main)
    raise ArgumentError, "EinhornZygote.serve needs a block (the worker)" unless main

    unless zygote?
      load&.call
      return main.call
    end
    sock = socket_from_env
    begin
      load&.call
    rescue Exception => e # rubocop:disable Lint/RescueException: a load failure of any kind
      fail_load(sock, e)
    end
    ready(sock)
    serve_requests(sock)
    main.call
  end

  # The zygote's socket, from EINHORN_ZYGOTE_FD (removed from ENV). Exits 2 if it is not one.
  def socket_from_env
    text = ENV.fetch(ENV_FD, "")
    unless text.match?(/\A\d{1,9}\z/)
      log("#{ENV_FD}=#{text.inspect} is not an fd number")
      exit!(2)
    end
    begin
      sock = Socket.for_fd(text.to_i)
      sock.autoclose = true
      type = sock.getsockopt(Socket::SOL_SOCKET, Socket::SO_TYPE).int
      raise ProtocolError, "not a SOCK_SEQPACKET socket" unless type == Socket::SOCK_SEQPACKET
    rescue SystemCallError, ProtocolError, SocketError, ArgumentError => e
      log("#{ENV_FD}=#{text}: #{e.message}")
      exit!(2)
    end
    sock.close_on_exec = true # nothing the application execs gets it
    ENV.delete(ENV_FD)
    sock
  end

  # Says ready (extra: more keys, e.g. {"preloaded" => true}); SIGTERM ends the zygote from now.
  def ready(sock, extra = {})
    Signal.trap("TERM", "SYSTEM_DEFAULT")
    flush_stdio
    send_message(sock, {"ready" => true}.merge(extra))
  rescue Errno::EPIPE, Errno::ECONNRESET
    exit!(0)
  end

  def fail_load(sock, error)
    text = "#{error.class}: #{error.message}"
    text = "#{text[0, 4000]}..." if text.bytesize > 4000
    $stderr.write("#{error.full_message(highlight: false)}\n") rescue nil
    begin
      send_message(sock, {"error" => text})
    rescue SystemCallError
      nil
    end
    $stderr.flush
    exit!(1)
  end

  def send_message(sock, obj)
    sock.sendmsg(JSON.generate(obj))
  end

  # The zygote's loop: returns only in a freshly forked worker, with the request it was forked
  # for, once the worker is set up (process group, signals, environment, fds, RNG).
  def serve_requests(sock)
    loop do
      req, ios = receive(sock)
      exit!(0) if req.nil? # EOF: the master is done with this generation
      unless req.key?("spawn")
        ios.each(&:close)
        next # a message this version does not know: ignored (forward compatible)
      end
      problem = request_problem(req)
      wanted = 3 + (problem ? 0 : req.fetch("fds", []).size)
      problem ||= "#{ios.size} fds instead of #{wanted} (stdin, stdout, stderr and 'fds')" if ios.size != wanted
      id = req["spawn"]
      if problem
        ios.each(&:close)
        if id.is_a?(Integer) && id.positive?
          send_message(sock, {"failed" => id, "error" => problem})
          next
        end
        log("protocol error from the master: #{problem}; exiting")
        exit!(3)
      end
      prctl if req["pdeath_signal"] # looked up once, before the fork, not in every worker
      pid, error = fork_worker(sock, req, ios)
      return req if pid == :worker

      ios.each { |io| io.close unless io.closed? }
      if pid
        send_message(sock, {"spawned" => id, "pid" => pid})
      else
        send_message(sock, {"failed" => id, "error" => error})
      end
    end
  end

  # One request: [Hash, [IO]] or [nil, []] at EOF. Exits on a protocol error.
  def receive(sock)
    # Ruby passes MSG_CMSG_CLOEXEC itself with scm_rights.
    data, _addr, rflags, *controls = sock.recvmsg(MAX_MESSAGE + 1, 0,
                                                  1024, scm_rights: true)
    ios = controls.select { |c| c.cmsg_is?(:SOCKET, :RIGHTS) }.flat_map(&:unix_rights)
    return [nil, []] if data.nil? || (data.empty? && ios.empty?)

    problem = nil
    if (rflags & (Socket::MSG_TRUNC | Socket::MSG_CTRUNC)) != 0 || data.bytesize > MAX_MESSAGE
      problem = "a message over #{MAX_MESSAGE} bytes or with too many fds"
    else
      begin
        obj = JSON.parse(data.force_encoding(Encoding::UTF_8))
        problem = "a message that is not a JSON object" unless obj.is_a?(Hash)
      rescue JSON::ParserError, EncodingError
        problem = "a message that is not JSON"
      end
    end
    if problem
      ios.each(&:close)
      log("protocol error from the master: #{problem}; exiting")
      exit!(3)
    end
    [obj, ios]
  rescue Errno::EINTR
    retry
  rescue Errno::ECONNRESET
    [nil, []]
  end

  def name_ok?(name)
    name.is_a?(String) && !name.empty? && !name.include?("=") && !name.include?("\0")
  end

  def request_problem(req)
    id = req["spawn"]
    return "'spawn' is not a positive integer" unless id.is_a?(Integer) && id.positive?

    env = req["env"]
    unless env.is_a?(Hash) && env.all? { |k, v| name_ok?(k) && v.is_a?(String) && !v.include?("\0") }
      return "'env' is not an object of strings"
    end
    names = req.fetch("self_pid_vars", [])
    return "'self_pid_vars' is not a list of names" unless names.is_a?(Array) && names.all? { |n| name_ok?(n) }

    targets = req.fetch("fds", [])
    unless targets.is_a?(Array) && targets.uniq.size == targets.size &&
           targets.all? { |t| t.is_a?(Integer) && t >= 3 && t < 65_536 }
      return "'fds' is not a list of distinct fd numbers from 3"
    end
    sig = req["pdeath_signal"]
    return "'pdeath_signal' is not a signal number" unless sig.nil? || (sig.is_a?(Integer) && sig.between?(1, 64))

    nil
  end

  # libc's prctl through Fiddle (standard library), looked up in the zygote the first time a
  # request needs it.
  def prctl
    @prctl ||= begin
      require "fiddle"
      Fiddle::Function.new(Fiddle.dlopen(nil)["prctl"], [Fiddle::TYPE_INT, Fiddle::TYPE_LONG,
                                                         Fiddle::TYPE_LONG, Fiddle::TYPE_LONG,
                                                         Fiddle::TYPE_LONG], Fiddle::TYPE_INT)
    end
  end

  # -k: a fork cleared the parent-death signal, so the worker sets it once the master is its
  # parent (before, C's exit would fire it). As an exec'd worker, it then checks that the master
  # is still its parent: one that died just before would never send it.
  def set_parent_death_signal(sig)
    raise SystemCallError.new("prctl(PR_SET_PDEATHSIG)", Fiddle.last_error) unless prctl.call(1, sig, 0, 0, 0).zero?

    master = ENV.fetch("EINHORN_MASTER_PID", "")
    exit!(1) if master.match?(/\A\d+\z/) && Process.ppid != master.to_i
  end

  # Nothing buffered in the zygote may be written twice (by it and by a worker); a closed
  # stdout must not end the zygote.
  def flush_stdio
    [$stdout, $stderr].each do |io|
      io.flush
    rescue IOError, SystemCallError
      nil
    end
  end

  # Double fork: [pid, nil] or [nil, error] in the zygote, [:worker, nil] in the worker.
  def fork_worker(sock, req, ios)
    r, w = IO.pipe
    flush_stdio
    begin
      child = Process.fork
    rescue SystemCallError, NotImplementedError => e
      r.close
      w.close
      return [nil, "fork: #{e.message}"]
    end
    if child.nil? # the intermediate child C
      r.close
      intermediate = Process.pid
      begin
        worker = Process.fork
      rescue SystemCallError => e
        w.write("E#{e.message}")
        exit!(1)
      end
      if worker
        # Its process group before anyone hears of it (it does the same first thing, but may
        # not have run yet when the reply arrives).
        begin
          Process.setpgid(worker, worker)
        rescue SystemCallError
          nil
        end
        w.write("P#{worker}")
        exit!(0)
      end
      w.close
      begin
        become_worker(sock, req, ios, intermediate)
      rescue Exception => e # rubocop:disable Lint/RescueException: no application code ran yet
        log("worker set-up failed: #{e.class}: #{e.message}")
        exit!(127)
      end
      return [:worker, nil]
    end
    w.close
    report = r.read
    r.close
    begin
      Process.waitpid(child)
    rescue Errno::ECHILD
      nil
    end
    case report
    when /\AP(\d+)\z/ then [Regexp.last_match(1).to_i, nil]
    when /\AE(.*)\z/m then [nil, "fork: #{Regexp.last_match(1)}"]
    else [nil, "the intermediate child died without reporting the worker's pid"]
    end
  end

  # In the worker W, before any application code (protocol v1, "How the zygote forks").
  def become_worker(sock, req, ios, intermediate)
    Process.setpgid(0, 0)
    reset_signals
    ENV.replace(req["env"])
    req.fetch("self_pid_vars", []).each { |name| ENV[name] = Process.pid.to_s }
    # Two phases, so that a received fd sitting at a target number is not overwritten before it
    # is copied: first copies above every target (F_DUPFD, then close-on-exec: Ruby 3.1's Fcntl
    # has no F_DUPFD_CLOEXEC), then each to its number. The zygote socket goes first: its number
    # is the one after the listeners, where -g's channel goes.
    targets = req.fetch("fds", [])
    floor = ([2] + targets).max + 1
    high = ios.map do |io|
      copy = IO.for_fd(io.fcntl(Fcntl::F_DUPFD, floor), autoclose: true)
      copy.close_on_exec = true
      copy
    end
    sock.close
    [STDIN, STDOUT, STDERR].each_with_index { |std, i| std.reopen(high[i]) }
    targets.each_with_index do |target, i|
      # F_DUPFD gives the lowest free number from target: target itself once it is free (a
      # received fd sitting there is closed first: its copy is in high). The new fd is not
      # close-on-exec, and no IO object owns it: it stays open for the application.
      ios.each { |io| io.close if !io.closed? && io.fileno == target }
      got = high[3 + i].fcntl(Fcntl::F_DUPFD, target)
      raise "fd #{target} is taken (got #{got})" unless got == target
    end
    (ios + high).each { |io| io.close unless io.closed? || io.fileno <= 2 }
    reseed_random
    wait_for_reparenting(intermediate)
    set_parent_death_signal(req["pdeath_signal"]) if req["pdeath_signal"]
  end

  # Application code must see the master as its parent (Einhorn::Worker checks Process.ppid
  # against EINHORN_MASTER_PID): wait until C has exited and this process was reparented. C
  # exits right after forking, so this is a few milliseconds at most.
  def wait_for_reparenting(intermediate)
    delay = 0.0005
    while Process.ppid == intermediate
      sleep(delay)
      delay = [delay * 2, 0.01].min
    end
  end

  # Ruby's own defaults (what an exec'd ruby starts with: INT raises Interrupt, PIPE is
  # ignored...) for every signal the application may have trapped.
  def reset_signals
    Signal.list.each do |name, number|
      next if number.zero? || UNTRAPPABLE.include?(name)

      begin
        Signal.trap(name, "DEFAULT")
      rescue ArgumentError, Errno::EINVAL
        nil
      end
    end
  end

  # As Einhorn's reseed_random: Kernel#rand, and OpenSSL's pool if it is loaded.
  def reseed_random
    srand
    OpenSSL::Random.seed(Random.new_seed.to_s) if defined?(OpenSSL::Random)
  end
end
