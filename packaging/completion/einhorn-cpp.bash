# bash completion for einhorn-cpp.
# The option list below is checked against `einhorn-cpp --help` by
# tests/ctl/completion_test.cc: an option added there fails that test until it is here.

_einhorn_cpp() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local opts="-h --help -n --number -b --bind -c --command-name -e --pidfile -f --lockfile -k --kill-children-on-exit -l --backlog -m --ack-mode -q --quiet -v --verbose -s --seconds -t --signal-timeout --drop-env-var --nice --version -d --socket-path -g --command-socket-as-fd --control-allow-uid --control-allow-gid --max-unacked --max-upgrade-additional --ack-timeout --upgrade-timeout --upgrade-max-failures --no-canary --drain-signal --subreaper --zygote --worker-watchdog -p --preload --gc-before-fork --max-worker-lifetime --reexec-as --log-format --metrics-listen --metrics-listen-public --ready-share --worker-output --worker-log-dir --max-worker-memory --memory-interval --memory-measure --config --check-config"
  # Everything from the first word that is not an option is the worker's command line.
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --) _command_offset $((i + 1)) 2>/dev/null || COMPREPLY=($(compgen -c -- "$cur")); return ;;
      -n|--number|-b|--bind|-c|--command-name|-e|--pidfile|-f|--lockfile|-l|--backlog|-m|--ack-mode|-s|--seconds|-t|--signal-timeout|--drop-env-var|--nice|-d|--socket-path|--control-allow-uid|--control-allow-gid|--max-unacked|--max-upgrade-additional|--ack-timeout|--upgrade-timeout|--upgrade-max-failures|--drain-signal|--worker-watchdog|-p|--preload|--max-worker-lifetime|--reexec-as|--log-format|--metrics-listen|--ready-share|--worker-output|--worker-log-dir|--max-worker-memory|--memory-interval|--memory-measure|--config|--check-config) ((i++)) ;;
      -*) ;;
      *) _command_offset "$i" 2>/dev/null || COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
  done
  case $prev in
    -e|--pidfile|-f|--lockfile|-d|--socket-path|--config|--check-config|-p|--preload)
      COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -m|--ack-mode) COMPREPLY=($(compgen -W "manual notify" -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
    --worker-output) COMPREPLY=($(compgen -W "inherit prefix json" -- "$cur")); return ;;
    --memory-measure) COMPREPLY=($(compgen -W "rss pss" -- "$cur")); return ;;
    --worker-log-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --drain-signal) COMPREPLY=($(compgen -W "USR2 TERM INT QUIT HUP USR1" -- "$cur")); return ;;
    --control-allow-uid) COMPREPLY=($(compgen -u -- "$cur")); return ;;
    --control-allow-gid) COMPREPLY=($(compgen -g -- "$cur")); return ;;
    -n|--number|-b|--bind|-c|--command-name|-l|--backlog|-s|--seconds|-t|--signal-timeout|\
    --drop-env-var|--nice|--max-unacked|--max-upgrade-additional|--ack-timeout|\
    --upgrade-timeout|--upgrade-max-failures|--worker-watchdog|--max-worker-lifetime|--reexec-as|--metrics-listen|\
    --ready-share)
      return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -c -- "$cur"))
  fi
}
complete -F _einhorn_cpp einhorn-cpp
