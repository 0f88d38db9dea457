# A stand-in for the `subprocess` gem (stripe/subprocess), for running Einhorn 1.1.1's
# integration suite: only the subset its helpers and tests use.
#   Subprocess::PIPE, Subprocess::NonZeroExit
#   Subprocess::Process.new(argv, stdin:, stdout:, stderr:, cwd:, env:)
#     #communicate -> [stdout, stderr] (reads the pipes to EOF, then waits)
#     #poll -> Process::Status or nil; #wait -> Process::Status (both cached, thread-safe)
#     #terminate (SIGTERM), #send_signal(name), #pid
#   Subprocess.check_call(argv, opts) { |process| ... }
# stdin/stdout/stderr take PIPE, a path (String), an IO or nil (inherit); env: replaces the
# whole environment, like the gem.
module Subprocess
  PIPE = -1

  class NonZeroExit < StandardError
    attr_reader :command, :status

    def initialize(command, status)
      @command = command
      @status = status
      super("Command #{command.inspect} returned non-zero exit status #{status.exitstatus}")
    end
  end

  class Process
    attr_reader :pid, :stdin, :stdout, :stderr, :command

    def initialize(command, opts = {})
      @command = Array(command).map(&:to_s)
      spawn_opts = {}
      child_ends = []
      @stdin, @stdout, @stderr = nil, nil, nil
      {stdin: :in, stdout: :out, stderr: :err}.each do |name, fd|
        spec = opts[name]
        case spec
        when nil
          next
        when PIPE
          r, w = IO.pipe
          if name == :stdin
            spawn_opts[fd] = r
            child_ends << r
            @stdin = w
          else
            spawn_opts[fd] = w
            child_ends << w
            instance_variable_set("@#{name}", r)
          end
        when String
          spawn_opts[fd] = (name == :stdin) ? [spec, "r"] : [spec, "w"]
        else
          spawn_opts[fd] = spec
        end
      end
      spawn_opts[:chdir] = opts[:cwd] if opts[:cwd]
      args = []
      if opts[:env]
        args << opts[:env].to_h
        spawn_opts[:unsetenv_others] = true
      end
      # [cmd, argv0]: never through a shell, even for a one-word command.
      @pid = ::Process.spawn(*args, [@command[0], @command[0]], *@command[1..], spawn_opts)
      child_ends.each(&:close)
      # One thread reaps the child; poll and wait read its result, from any thread.
      @waiter = ::Process.detach(@pid)
      if block_given?
        yield self
      end
    end

    def poll
      @waiter.alive? ? nil : @waiter.value
    end

    def wait
      @waiter.value
    end

    def send_signal(signal)
      ::Process.kill(signal, @pid)
    rescue Errno::ESRCH
      nil
    end

    def terminate
      send_signal("TERM")
    end

    # Reads stdout and stderr (those that are pipes) until both reach EOF, then waits.
    def communicate
      @stdin&.close
      readers = [@stdout, @stderr].compact.map do |io|
        Thread.new do
          data = +""
          begin
            data << io.read.to_s
          rescue IOError
            nil
          ensure
            io.close unless io.closed?
          end
          data
        end
      end
      out = @stdout ? readers.shift.value : nil
      err = @stderr ? readers.shift.value : nil
      wait
      [out, err]
    end
  end

  def self.check_call(command, opts = {}, &blk)
    status = Process.new(command, opts, &blk).wait
    raise NonZeroExit.new(command, status) unless status.exitstatus == 0
    status
  end

  def self.call(command, opts = {}, &blk)
    Process.new(command, opts, &blk).wait
  end
end
