# bash completion for einhornctl (einhorn-cpp).
# The word lists below are checked against `einhornctl --help` and each subcommand's --help by
# tests/ctl/completion_test.cc: a command or option added there fails that test until it is here.

_einhornctl_sockets() {
  # -c NAME: the masters whose sockets are in $TMPDIR, as einhorn-NAME.sock.
  local dir=${TMPDIR:-/tmp} f names=()
  for f in "${dir%/}"/einhorn-*.sock; do
    [[ -S $f ]] || continue
    f=${f##*/einhorn-}
    names+=("${f%.sock}")
  done
  COMPREPLY=($(compgen -W "${names[*]}" -- "$cur"))
}

_einhornctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local global_opts="-h --help --version -d --socket-path -c --command-name --json --timeout"
  local commands="status inc dec set signal quieter louder log-level die ack ehlo help state raw upgrade recycle reload wait events metrics shell"
  case $prev in
    -d|--socket-path) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -c|--command-name) _einhornctl_sockets; return ;;
    --timeout|--wait-timeout|--interval|--since) return ;;
  esac
  # The subcommand, if one has been typed (skipping the global options' values).
  local i cmd=
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      -d|--socket-path|-c|--command-name|--timeout) ((i++)) ;;
      -*) ;;
      *) cmd=${COMP_WORDS[i]}; break ;;
    esac
  done
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    fi
    return
  fi
  local opts= args=
  case $cmd in
    status) opts="-h --help" ;;
    inc) opts="-h --help" ;;
    dec) opts="-h --help" ;;
    set) opts="-h --help --wait --wait-timeout" ;;
    signal) opts="-h --help"; args="HUP INT QUIT USR1 USR2 TERM TTIN TTOU WINCH CONT KILL" ;;
    quieter) opts="-h --help" ;;
    louder) opts="-h --help" ;;
    log-level) opts="-h --help"; args="debug info error" ;;
    die) opts="-h --help"; args="USR2 TERM INT QUIT KILL" ;;
    ack) opts="-h --help" ;;
    ehlo) opts="-h --help" ;;
    help) opts="-h --help" ;;
    state) opts="-h --help" ;;
    raw) opts="-h --help"; args="ehlo help state inc dec set_workers upgrade upgrade_fleet recycle reload die quieter louder signal config" ;;
    upgrade) opts="-h --help --fleet --wait --wait-timeout" ;;
    recycle) opts="-h --help --all --wait --wait-timeout" ;;
    reload) opts="-h --help --no-wait --wait-timeout" ;;
    wait) opts="-h --help --wait-timeout"; args="ready drained upgraded" ;;
    events) opts="-h --help --since -f --follow --interval" ;;
    metrics) opts="-h --help" ;;
    shell) opts="-h --help" ;;
  esac
  if [[ $cur == -* ]]; then
    # Options of the whole program may follow the subcommand too.
    COMPREPLY=($(compgen -W "$opts $global_opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$args" -- "$cur"))
  fi
}
complete -F _einhornctl einhornctl
