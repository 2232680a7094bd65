# Shared helpers for the shell tests.  Each test runs in its own scratch
# directory, removed on exit.  Tools a test needs are checked with `need`:
# a missing tool fails the test loudly, it never skips.
set -euo pipefail
export LC_ALL=C

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 ||
      fail "required tool '$t' is not installed (README's setup installs it)"
  done
}

: "${SYNCPLAN:?SYNCPLAN must point at the syncplan binary}"
: "${MKTREE:?MKTREE must point at the mktree tool}"
: "${TREECMP:?TREECMP must point at the treecmp tool}"

work=$(mktemp -d "${TMPDIR:-/tmp}/syncplan-test.XXXXXX")
cleanup() {
  chmod -R u+rwx "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# expect_status WANT CMD...: run CMD, fail unless it exits with WANT.
# Its stdout/stderr are kept in $work/out and $work/err.
expect_status() {
  local want=$1 got=0
  shift
  "$@" >"$work/out" 2>"$work/err" || got=$?
  [ "$got" = "$want" ] ||
    fail "'$*' exited $got, expected $want; stderr: $(cat "$work/err")"
}

# Run a command without the capabilities that let root ignore file modes,
# so an unreadable directory is unreadable in CI, which runs as root.
unprivileged() {
  if [ "$(id -u)" = 0 ]; then
    need setpriv
    setpriv --bounding-set=-dac_override,-dac_read_search \
      --inh-caps=-dac_override,-dac_read_search "$@"
  else
    "$@"
  fi
}

# The set of paths below DIR, NUL-separated and sorted.
tree_paths() {
  (cd "$1" && find . -mindepth 1 -printf '%P\0') | sort -z
}

# has_path LIST PATH: LIST (NUL-separated) contains PATH exactly.  Pure
# bash, because grep takes a newline in a pattern as two patterns.
has_path() {
  local p
  while IFS= read -r -d '' p; do
    [ "$p" = "$2" ] && return 0
  done <"$1"
  return 1
}

# ------------------------------------------------------------ exit hooks
# Servers a test starts must stop however the test ends.  at_exit CMD
# registers a command string (run with eval, so quote with printf %q) that
# the EXIT trap runs before `cleanup` removes the scratch directory; the last
# registered runs first, as servers started later may depend on earlier ones.
_at_exit=()
at_exit() {
  _at_exit+=("$1")
}
_run_at_exit() {
  local i
  for ((i = ${#_at_exit[@]} - 1; i >= 0; i--)); do
    eval "${_at_exit[i]}" || true
  done
  _at_exit=()
}
trap '_run_at_exit; cleanup' EXIT
# bash runs the EXIT trap on `exit`, not when a signal kills it: turn the
# usual termination signals into exits so Ctrl-C or a kill stops servers too.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ real peers
# A private sshd and `rclone serve sftp`, on 127.0.0.1 only, with keys made
# per run and host keys always checked.  Call the start functions from the
# test's main shell, never inside $(...): they export variables, and the
# servers are tied to this shell's life (see _spawn).  One of each per test.

# A TCP port on 127.0.0.1 that nothing listens on, below the kernel's
# ephemeral range so no outgoing connection holds it.  Only a guess: the
# server's own bind is the real check, and the start functions retry with
# another port when it fails with "address in use".
free_port() {
  local lo hi base span port i
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
  if ((lo > 12000)); then
    base=10000 span=$((lo - 10000))
  else
    base=$((hi + 1)) span=$((65536 - hi - 1))
  fi
  for ((i = 0; i < 100; i++)); do
    port=$((base + (RANDOM * 32768 + RANDOM) % span))
    # A refused connection means no listener; bash's /dev/tcp needs no tool.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  fail "no free TCP port found on 127.0.0.1"
}

# _spawn LOG CMD...: start CMD in the background, output appended to LOG, and
# set _spawned to its pid.  setpriv --pdeathsig sends it SIGTERM when this
# shell dies without running its traps (SIGKILL, e.g. a ctest timeout), so
# no server outlives its test.  It is disowned, so a test's bare `wait` for
# its own background jobs does not wait for the servers too.
_spawned=
_spawn() {
  local log=$1
  shift
  if command -v setpriv >/dev/null 2>&1; then
    setpriv --pdeathsig TERM "$@" </dev/null >>"$log" 2>&1 &
  else
    "$@" </dev/null >>"$log" 2>&1 &
  fi
  _spawned=$!
  disown "$_spawned"
}

# _await PID LOG WHAT CMD...: poll CMD until it succeeds (return 0) or the
# server PID exits (return 1; LOG says why).  Fails the test after ~10 s.
_await() {
  local pid=$1 log=$2 what=$3 deadline=$((SECONDS + 10))
  shift 3
  while :; do
    kill -0 "$pid" 2>/dev/null || return 1
    "$@" >/dev/null 2>&1 && return 0
    ((SECONDS <= deadline)) ||
      fail "$what (pid $pid) did not answer within 10 s; log: $(tail -5 "$log")"
    sleep 0.1
  done
}

# _stop_pid PID: SIGTERM, up to 5 s of grace, then SIGKILL, and wait until
# it is gone (bash reaps disowned children too, so kill -0 then fails).
# Never exits: it runs in the EXIT trap, where `exit` would skip cleanup.
_stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "warning: pid $pid survives SIGKILL" >&2
  return 1
}

# add_ssh_host NAME PORT [ALIAS]: a Host block in $SSH_CONFIG for the sshd
# of start_sshd (or of start_sshd_host ALIAS) reached through 127.0.0.1:PORT
# (e.g. a proxy in front of it).  HostKeyAlias makes every such host check
# the same known_hosts entry.
add_ssh_host() {
  local name=$1 port=$2 alias=${3:-sptest} d="$work/ssh"
  cat >"$d/hosts.d/$name.conf" <<CFG
Host $name
  HostName 127.0.0.1
  Port $port
  User $(id -un)
  HostKeyAlias $alias
  IdentityFile "$d/id_ed25519"
  IdentitiesOnly yes
  UserKnownHostsFile "$d/known_hosts"
  StrictHostKeyChecking yes
  BatchMode yes
CFG
}

# _sshd_config DIR PORT [NAME=VALUE]: DIR/sshd_config for an sshd on
# 127.0.0.1:PORT with the host key DIR/host_ed25519, admitting only the
# current user with the key of start_sshd, checked with sshd -t.  NAME=VALUE
# goes into every session's environment.  One place for the settings, so
# every sshd of a test behaves alike.
_sshd_config() {
  local d=$1 port=$2 env=${3:-} sshd=/usr/sbin/sshd
  # StrictModes no: the scratch directory lives under the world-writable
  # /tmp, which StrictModes rejects on the way to authorized_keys.
  # MaxStartups is raised because parallel workers open many connections
  # at once, and the default (10:30:100) drops some of them at random.
  # SHLVL=1: bash sources ~/.bashrc for an ssh command only in a top-level
  # shell (SHLVL < 2 after its own increment), and the user's rc files
  # are no part of a test: they cost time per session and can fail under
  # parallel sessions (pyenv's rehash lock did, here).
  cat >"$d/sshd_config" <<CFG
ListenAddress 127.0.0.1:$port
AddressFamily inet
HostKey $d/host_ed25519
PidFile $d/sshd.pid
AuthorizedKeysFile $work/ssh/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers $(id -un)
UsePAM no
StrictModes no
UseDNS no
PermitUserEnvironment no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PermitTunnel no
PrintMotd no
PrintLastLog no
MaxStartups 64
MaxSessions 64
LoginGraceTime 20
ClientAliveInterval 10
Subsystem sftp internal-sftp
SetEnv SHLVL=1${env:+ $env}
LogLevel VERBOSE
CFG
  if ! "$sshd" -t -f "$d/sshd_config" 2>"$d/sshd.log" && [ "$(id -u)" = 0 ] &&
    grep -q 'Missing privilege separation directory' "$d/sshd.log"; then
    # sshd as root insists on its privilege separation directory, which
    # only the packaged service creates (/run/sshd on Debian).  It is an
    # empty root-owned directory, so making it here is harmless.
    mkdir -p -m 755 "$(sed -n 's/.*Missing privilege separation directory: \(\/[^[:space:]]*\).*/\1/p' "$d/sshd.log")"
  fi
  "$sshd" -t -f "$d/sshd_config" 2>"$d/sshd.log" ||
    fail "sshd rejects its test config: $(cat "$d/sshd.log")"
}

# start_sshd: a private sshd on 127.0.0.1, as the current user (as root
# when the tests run as root, with a private config that admits only key
# logins).  Exports SSH_CONFIG (an ssh -F file, with Host sptest), SSHD_PORT,
# SSHD_PID, SSH_HOST=sptest, SSH_RSH="ssh -F $SSH_CONFIG" (for rsync -e and
# syncplan -e).  stop_sshd, or the EXIT trap, stops it.
start_sshd() {
  local sshd=/usr/sbin/sshd d="$work/ssh" try port
  need "$sshd" ssh ssh-keygen
  [ -z "${SSHD_PID:-}" ] || fail "start_sshd: already started (pid $SSHD_PID)"
  # Registered first, so a start that fails half-way still stops the server.
  at_exit stop_sshd
  mkdir -p "$d/hosts.d"
  chmod 700 "$d"
  ssh-keygen -q -t ed25519 -N '' -C sptest-host -f "$d/host_ed25519" </dev/null
  ssh-keygen -q -t ed25519 -N '' -C sptest-user -f "$d/id_ed25519" </dev/null
  cp "$d/id_ed25519.pub" "$d/authorized_keys"
  chmod 600 "$d/authorized_keys"
  # ssh -F reads no other file: the user's ~/.ssh/config, agent and
  # /etc/ssh cannot leak in.  Hosts come from hosts.d, included first
  # because the first value ssh obtains for an option wins.
  cat >"$d/config" <<CFG
Include "$d/hosts.d/*.conf"
Host *
  ForwardAgent no
  ForwardX11 no
  IdentityAgent none
  AddKeysToAgent no
  ControlMaster no
  ControlPath none
  ControlPersist no
  UpdateHostKeys no
  GlobalKnownHostsFile /dev/null
  CheckHostIP no
  HashKnownHosts no
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  ConnectTimeout 10
  ServerAliveInterval 5
  ServerAliveCountMax 3
  LogLevel ERROR
CFG
  chmod 600 "$d/config"
  for ((try = 0; try < 10; try++)); do
    port=$(free_port)
    {
      printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$d/host_ed25519.pub")"
      printf 'sptest %s\n' "$(cut -d' ' -f1,2 "$d/host_ed25519.pub")"
    } >"$d/known_hosts"
    add_ssh_host sptest "$port"
    export SSH_CONFIG="$d/config"
    _sshd_config "$d" "$port"
    _spawn "$d/sshd.log" "$sshd" -D -e -f "$d/sshd_config"
    SSHD_PID=$_spawned
    if _await "$SSHD_PID" "$d/sshd.log" sshd ssh -F "$SSH_CONFIG" sptest true; then
      export SSHD_PORT=$port SSHD_PID SSH_HOST=sptest
      export SSH_RSH="ssh -F $SSH_CONFIG"
      return 0
    fi
    SSHD_PID=
    grep -q 'Address already in use' "$d/sshd.log" ||
      fail "sshd did not start: $(tail -5 "$d/sshd.log")"
  done
  fail "sshd did not start after $try attempts: $(tail -5 "$d/sshd.log")"
}

# stop_sshd: stop the sshd of start_sshd and the sessions it still serves.
stop_sshd() {
  local pid=${SSHD_PID:-} kid
  [ -n "$pid" ] || return 0
  for kid in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
    kill -TERM "$kid" 2>/dev/null || true
  done
  _stop_pid "$pid"
  SSHD_PID=
}

# ------------------------------------------------------------ more sshd
# Several sshd at once, for tests of many peers (e.g. one per data-transfer
# node) that fail one at a time.  start_sshd_host NAME starts one on a port
# of its own with a host key of its own ($work/ssh-NAME), admitting the user
# and key of start_sshd with the same settings, and adds a `Host NAME` block
# to $SSH_CONFIG and its key to the same known_hosts, as for sptest, so that
# `ssh -F "$SSH_CONFIG" NAME` and `syncplan -e "$SSH_RSH"` reach it.
# sshd_port NAME and sshd_pid NAME print its port and its listener's pid
# (empty while killed).  kill_sshd NAME makes the node vanish mid-session,
# restart_sshd NAME brings it back as it was, change_host_key NAME brings
# it back reinstalled (a key that known_hosts no longer matches).  The EXIT
# trap kills them all, sessions included.  Call them from the test's main
# shell, as the start functions above.
declare -gA _sshd_port=() _sshd_pid=()
_sshd_hosts_at_exit=

# _sshd_tag NAME: NAME=VALUE put into the environment of every session of
# host NAME (SetEnv), unique to the run, so that kill_sshd finds commands
# that left the listener's process tree (daemonized, or orphaned by a
# parent that died first).  The sshd processes themselves cannot carry it:
# their process titles overwrite what /proc shows of their environment.
_sshd_tag() {
  echo "SPTEST_SSHD=${work##*/}.$1"
}

# _sshd_host NAME CALLER: fail unless start_sshd_host started NAME.
_sshd_host() {
  [ -n "${_sshd_port[$1]:-}" ] || fail "$2: no host '$1' (start_sshd_host starts one)"
}

# _alive PID: PID runs.  A zombie counts as gone: it holds no socket and
# runs nothing, and pid 1 of a container may never reap it.
_alive() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != [ZX] ]]
}

# _sshd_procs ROOT CONFIG TAG: the live pids of the sshd ROOT (when it still
# is the one started with CONFIG, not a reused pid), of every process whose
# environment holds TAG, and of all their descendants.  Walked from /proc
# because each sshd connection makes itself a new session (setsid), and so
# does each command it runs: no process group or session holds them all.
_sshd_procs() {
  local root=$1 config=$2 tag=$3 f stat pid ppid
  local -A kids=() live=() seen=()
  local todo=()
  for f in /proc/[0-9]*/stat; do
    read -r stat 2>/dev/null <"$f" || continue
    pid=${f#/proc/} pid=${pid%/stat} stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]] || continue
    stat=${stat#* } ppid=${stat%% *}
    live[$pid]=1
    kids[$ppid]+=" $pid"
  done
  if [ -n "$root" ] && [ -n "${live[$root]:-}" ] &&
    grep -qaF -- "$config" "/proc/$root/cmdline" 2>/dev/null; then
    todo+=("$root")
  fi
  for f in ${tag:+$(grep -lzxF -- "$tag" /proc/[0-9]*/environ 2>/dev/null || true)}; do
    pid=${f#/proc/} pid=${pid%/environ}
    [ -z "${live[$pid]:-}" ] || todo+=("$pid")
  done
  while ((${#todo[@]})); do
    pid=${todo[-1]}
    unset 'todo[-1]'
    [ -z "${seen[$pid]:-}" ] || continue
    seen[$pid]=1
    echo "$pid"
    # shellcheck disable=SC2206 # pids: split, never globbed
    todo+=(${kids[$pid]:-})
  done
}

# _sshd_host_down NAME: SIGKILL host NAME's sshd and everything it runs, and
# wait until all of it is gone (returns 1 if that takes over ~5 s).  All
# are stopped (SIGSTOP) before any is killed, and found again until no new
# one appears: a stopped process cannot fork, and its children stay its
# children, where the walk finds them; a parent killed first would leave
# them to pid 1.  Never exits: it runs in the EXIT trap.
_sshd_host_down() {
  local name=$1 config="$work/ssh-$1/sshd_config" tag pid i new pids=() left
  local -A stopped=()
  tag=$(_sshd_tag "$name")
  for ((i = 0; i < 50; i++)); do
    new=0
    for pid in $(_sshd_procs "${_sshd_pid[$name]:-}" "$config" "$tag"); do
      [ -z "${stopped[$pid]:-}" ] || continue
      kill -STOP "$pid" 2>/dev/null || true
      stopped[$pid]=1 new=1
      pids+=("$pid")
    done
    ((new)) || break
  done
  ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
  _sshd_pid[$name]=
  for ((i = 0; i < 100; i++)); do
    left=()
    for pid in "${pids[@]}"; do
      ! _alive "$pid" || left+=("$pid")
    done
    # Stragglers by the tag only: the listener's pid may be reused by now.
    for pid in $(_sshd_procs "" "" "$tag"); do
      kill -KILL "$pid" 2>/dev/null || true
      left+=("$pid")
    done
    ((${#left[@]})) || return 0
    pids=("${left[@]}")
    sleep 0.05
  done
  echo "warning: sshd $name: pids ${pids[*]} survive SIGKILL" >&2
  return 1
}

# _sshd_host_known NAME PORT: host NAME's known_hosts lines for its current
# key, under [127.0.0.1]:PORT and its HostKeyAlias, as sptest's are.
_sshd_host_known() {
  local key
  key=$(cut -d' ' -f1,2 "$work/ssh-$1/host_ed25519.pub")
  printf '[127.0.0.1]:%s %s\n%s %s\n' "$2" "$key" "$1" "$key"
}

# _sshd_host_spawn NAME: start host NAME's sshd as its sshd_config says, and
# wait until a login works with its current key ($work/ssh-NAME/known_hosts
# always holds that one, the suite's known_hosts maybe not: see
# change_host_key).  Returns 1 when the port was in use; fails otherwise.
_sshd_host_spawn() {
  local name=$1 d="$work/ssh-$1"
  : >"$d/sshd.log"
  _spawn "$d/sshd.log" env "$(_sshd_tag "$name")" \
    /usr/sbin/sshd -D -e -f "$d/sshd_config"
  _sshd_pid[$name]=$_spawned
  if _await "$_spawned" "$d/sshd.log" "sshd $name" \
    ssh -n -F "$SSH_CONFIG" -o "UserKnownHostsFile=$d/known_hosts" "$name" true; then
    return 0
  fi
  _sshd_pid[$name]=
  grep -q 'Address already in use' "$d/sshd.log" ||
    fail "sshd $name did not start: $(tail -5 "$d/sshd.log")"
  return 1
}

# _sshd_host_up NAME: start host NAME's sshd again on its port.  Retried for
# a while, in case a socket of its previous run is still being closed.
_sshd_host_up() {
  local name=$1 i
  for ((i = 0; i < 20; i++)); do
    _sshd_host_spawn "$name" && return 0
    sleep 0.25
  done
  fail "sshd $name: port ${_sshd_port[$name]} stays in use: $(tail -5 "$work/ssh-$name/sshd.log")"
}

# _sshd_host_check NAME CALLER: ssh NAME works as a test would run it, with
# the suite's known_hosts.
_sshd_host_check() {
  ssh -n -F "$SSH_CONFIG" "$1" true 2>"$work/ssh-$1/ssh.err" ||
    fail "$2: sshd $1 answers, but 'ssh $1 true' fails: $(cat "$work/ssh-$1/ssh.err")"
}

# start_sshd_host NAME: see above.  Runs start_sshd first if the test did
# not, as the user, key and $SSH_CONFIG are that one's.
start_sshd_host() {
  local name=${1:?start_sshd_host needs a host name} d try port
  d="$work/ssh-$name"
  # A Host pattern, a file name and a known_hosts name all at once.
  [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
    fail "start_sshd_host: '$name' is not a plain host name"
  [ "$name" != sptest ] || fail "start_sshd_host: sptest is start_sshd's"
  [ -z "${_sshd_port[$name]:-}" ] || fail "start_sshd_host: $name already started"
  [ -f "$work/ssh/authorized_keys" ] || start_sshd
  if [ -z "$_sshd_hosts_at_exit" ]; then
    # Registered after start_sshd's, so it runs before: sessions first.
    at_exit _stop_sshd_hosts
    _sshd_hosts_at_exit=1
  fi
  mkdir -p "$d"
  chmod 700 "$d"
  ssh-keygen -q -t ed25519 -N '' -C "$name-host" -f "$d/host_ed25519" </dev/null
  for ((try = 0; try < 10; try++)); do
    port=$(free_port)
    _sshd_port[$name]=$port
    _sshd_config "$d" "$port" "$(_sshd_tag "$name")"
    _sshd_host_known "$name" "$port" >"$d/known_hosts"
    add_ssh_host "$name" "$port" "$name"
    if _sshd_host_spawn "$name"; then
      # Only now that the port is settled: a failed try leaves no entry.
      cat "$d/known_hosts" >>"$work/ssh/known_hosts"
      _sshd_host_check "$name" start_sshd_host
      return 0
    fi
  done
  fail "sshd $name did not start after $try attempts: $(tail -5 "$d/sshd.log")"
}

# sshd_port NAME, sshd_pid NAME: print host NAME's port, and its listener's
# pid (empty while it is killed).
sshd_port() {
  _sshd_host "${1:?sshd_port needs a host name}" sshd_port
  echo "${_sshd_port[$1]}"
}
sshd_pid() {
  _sshd_host "${1:?sshd_pid needs a host name}" sshd_pid
  echo "${_sshd_pid[$1]}"
}

# kill_sshd NAME: host NAME stops answering at once, as a node that dies:
# its listener and every session (the per-connection sshd and the commands
# they run, e.g. rsync) get SIGKILL; returns once all are gone.  Clients
# see their connections drop and new ones refused.  A no-op when it is
# killed already.
kill_sshd() {
  _sshd_host "${1:?kill_sshd needs a host name}" kill_sshd
  _sshd_host_down "$1" || fail "kill_sshd: processes of $1 survive SIGKILL"
}

# restart_sshd NAME: host NAME back on the same port with the same host
# key, so known_hosts still holds; killed first if it still runs.  Returns
# once `ssh NAME` works.
restart_sshd() {
  _sshd_host "${1:?restart_sshd needs a host name}" restart_sshd
  _sshd_host_down "$1" || fail "restart_sshd: processes of $1 survive SIGKILL"
  _sshd_host_up "$1"
  _sshd_host_check "$1" restart_sshd
}

# change_host_key NAME: host NAME back on the same port with a new host
# key, as a reinstalled node, and known_hosts left as it was: `ssh NAME`
# now fails host key verification.  Returns once the sshd answers.
change_host_key() {
  local name=${1:?change_host_key needs a host name} d
  _sshd_host "$name" change_host_key
  d="$work/ssh-$name"
  _sshd_host_down "$name" || fail "change_host_key: processes of $name survive SIGKILL"
  rm -f "$d/host_ed25519" "$d/host_ed25519.pub"
  ssh-keygen -q -t ed25519 -N '' -C "$name-host" -f "$d/host_ed25519" </dev/null
  _sshd_host_known "$name" "${_sshd_port[$name]}" >"$d/known_hosts"
  _sshd_host_up "$name"
}

# _stop_sshd_hosts: kill every host of start_sshd_host (the EXIT trap).
_stop_sshd_hosts() {
  local name
  for name in "${!_sshd_port[@]}"; do
    _sshd_host_down "$name" || true
  done
}

# start_rclone_sftp ROOT: `rclone serve sftp ROOT` on 127.0.0.1, password
# login, per-run host key that the client checks.  Writes $work/rclone.conf
# with a remote `spsftp` for it and exports RCLONE_CONFIG (so every rclone
# the test runs, syncplan's included, reads that file and never the user's),
# RCLONE_REMOTE=spsftp, RCLONE_SFTP_PORT and RCLONE_SFTP_PID.
# stop_rclone_sftp, or the EXIT trap, stops it.
start_rclone_sftp() {
  local root=${1:?start_rclone_sftp needs the directory to serve}
  local d="$work/rclone" user=sptest pass try port
  need rclone ssh-keygen
  [ -d "$root" ] || fail "start_rclone_sftp: $root is not a directory"
  [ -z "${RCLONE_SFTP_PID:-}" ] || fail "start_rclone_sftp: already started (pid $RCLONE_SFTP_PID)"
  at_exit stop_rclone_sftp
  mkdir -p "$d"
  chmod 700 "$d"
  ssh-keygen -q -t ed25519 -N '' -C sptest-rclone -f "$d/host_ed25519" </dev/null
  pass=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
  # Password logins only: an empty key list instead of ~/.ssh/authorized_keys.
  : >"$d/authorized_keys"
  export RCLONE_CONFIG="$work/rclone.conf"
  for ((try = 0; try < 10; try++)); do
    port=$(free_port)
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$d/host_ed25519.pub")" >"$d/known_hosts"
    # No hash commands: the server has no shell, and rclone would otherwise
    # probe for md5sum over it on every connection.
    cat >"$RCLONE_CONFIG" <<CFG
[spsftp]
type = sftp
host = 127.0.0.1
port = $port
user = $user
pass = $(rclone obscure "$pass")
known_hosts_file = $d/known_hosts
shell_type = none
set_modtime = true
md5sum_command = none
sha1sum_command = none
CFG
    chmod 600 "$RCLONE_CONFIG"
    _spawn "$d/serve.log" rclone serve sftp "$root" --config "$RCLONE_CONFIG" \
      --addr "127.0.0.1:$port" --key "$d/host_ed25519" --user "$user" --pass "$pass" \
      --authorized-keys "$d/authorized_keys" --cache-dir "$d/cache"
    RCLONE_SFTP_PID=$_spawned
    if _await "$RCLONE_SFTP_PID" "$d/serve.log" "rclone serve sftp" \
      rclone lsf spsftp: --config "$RCLONE_CONFIG" --retries 1 --low-level-retries 1 --contimeout 2s; then
      export RCLONE_SFTP_PORT=$port RCLONE_SFTP_PID RCLONE_REMOTE=spsftp
      return 0
    fi
    RCLONE_SFTP_PID=
    grep -q 'address already in use' "$d/serve.log" ||
      fail "rclone serve sftp did not start: $(tail -5 "$d/serve.log")"
  done
  fail "rclone serve sftp did not start after $try attempts: $(tail -5 "$d/serve.log")"
}

# stop_rclone_sftp: stop the server of start_rclone_sftp.
stop_rclone_sftp() {
  [ -n "${RCLONE_SFTP_PID:-}" ] || return 0
  _stop_pid "$RCLONE_SFTP_PID"
  RCLONE_SFTP_PID=
}

# start_wanproxy PORT [OPTION...]: bench/wanproxy on 127.0.0.1 in front of
# 127.0.0.1:PORT, emulating a WAN link, e.g. `start_wanproxy "$SSHD_PORT"
# --delay-ms 25 --conn-rate 25M --total-rate 100M` then `add_ssh_host wan
# "$WANPROXY_PORT"`.  Exports WANPROXY_PORT and WANPROXY_PID; its log (-v:
# bytes and rate per connection) is $work/wanproxy.log.  Binary: $WANPROXY,
# else $BUILD_DIR/bench/wanproxy.  stop_wanproxy, or the EXIT trap, stops it.
start_wanproxy() {
  local to=${1:?start_wanproxy needs the port to relay to} i
  shift
  local bin=${WANPROXY:-${BUILD_DIR:?BUILD_DIR or WANPROXY must be set}/bench/wanproxy}
  need "$bin"
  [ -z "${WANPROXY_PID:-}" ] || fail "start_wanproxy: already started (pid $WANPROXY_PID)"
  at_exit stop_wanproxy
  rm -f "$work/wanproxy.port"
  # Port 0: the proxy binds a free port itself and reports it, so no race.
  _spawn "$work/wanproxy.log" "$bin" --listen 127.0.0.1:0 --to "127.0.0.1:$to" \
    --port-file "$work/wanproxy.port" -v "$@"
  WANPROXY_PID=$_spawned
  for ((i = 0; i < 100; i++)); do
    [ -s "$work/wanproxy.port" ] && break
    kill -0 "$WANPROXY_PID" 2>/dev/null ||
      fail "wanproxy did not start: $(tail -5 "$work/wanproxy.log")"
    sleep 0.05
  done
  [ -s "$work/wanproxy.port" ] || fail "wanproxy wrote no port within 5 s"
  export WANPROXY_PORT WANPROXY_PID
  WANPROXY_PORT=$(cat "$work/wanproxy.port")
}

# stop_wanproxy: stop the proxy of start_wanproxy (its connections close).
stop_wanproxy() {
  [ -n "${WANPROXY_PID:-}" ] || return 0
  _stop_pid "$WANPROXY_PID"
  WANPROXY_PID=
}
