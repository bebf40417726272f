#!/usr/bin/env bash
# The seed's container in a real container engine, and the faults a container brings.
#
#   sudo bash examples/docker/container-test.sh [SCENARIO...]
#
# Builds examples/docker/Dockerfile with podman, runs the seed's `docker run` line
# against it, runs compose.yaml with podman-compose, then one container per fault
# (--pids-limit, --memory, --read-only, --user, a service that ignores SIGTERM), and
# examples/kubernetes/pod.yaml with `podman kube play`, its HTTP probes on the probe port;
# then examples/docker/supervisord's image under supervisord and under the watchdog.
# SCENARIOs: seed compose pids memory read_only user stubborn kube supervisord (default: all).
# Prints one PASS or FAIL line per check and FIGURE lines with what it measured;
# exits 0 when every check passed, 1 when one failed, 77 when it cannot run here
# (it says why). Needs root, podman, runc, mmdebstrap, podman-compose and curl, and
# catatonit for kube (Debian: apt-get install podman runc mmdebstrap podman-compose curl catatonit).
#
# No image registry is needed: the base image the Dockerfile's FROM names is made
# with mmdebstrap from the host's own apt sources and cached (WATCHDOG_CONTAINER_CACHE,
# default /var/tmp/watchdog-container-cache), keyed by the recipe, the sources and
# the host's extra CA certificates. Everything podman stores or reads lives in a
# temporary directory that is removed at the end.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOCKER_DIR=$ROOT/examples/docker
IMAGE=watchdog-demo
SEED_COMMANDS=("/usr/sbin/sshd" "/etc/init.d/apache2 start")
PASSED=0
FAILED=0

skip() { echo "SKIP container test: $*"; exit 77; }
pass() { PASSED=$((PASSED + 1)); echo "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
figure() { echo "FIGURE $*"; }
note() { echo "---- $*"; }
now_ms() { date +%s%3N; }

ALL_SCENARIOS=(seed compose pids memory read_only user stubborn kube supervisord)
SCENARIOS=("$@")
[ $# -gt 0 ] || SCENARIOS=("${ALL_SCENARIOS[@]}")
for scenario in "${SCENARIOS[@]}"; do
  case " ${ALL_SCENARIOS[*]} " in
    *" $scenario "*) ;;
    *) echo "container-test.sh: no scenario '$scenario' (one of: ${ALL_SCENARIOS[*]})" >&2; exit 2 ;;
  esac
done

[ "$(id -u)" = 0 ] || skip "needs root (rootful podman; mmdebstrap makes the base image as root)"
missing=()
for tool in podman runc mmdebstrap podman-compose curl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
# A pod's infra container runs catatonit, which podman copies into a local pause image.
case " ${SCENARIOS[*]} " in
  *" kube "*) command -v catatonit >/dev/null || missing+=(catatonit) ;;
esac
[ ${#missing[@]} = 0 ] || skip "not installed: ${missing[*]} (Debian: apt-get install podman runc mmdebstrap podman-compose curl catatonit)"

FROM=$(awk 'toupper($1) == "FROM" { print $2; exit }' "$DOCKER_DIR/Dockerfile")
case $FROM in */*) BASE_NAME=$FROM ;; *) BASE_NAME=docker.io/library/$FROM ;; esac
SUITE=${FROM##*-}  # python:3.11-slim-bookworm: a Debian bookworm with Python 3.11
if [ -n "${WATCHDOG_APT_SOURCES:-}" ]; then
  SOURCES=$WATCHDOG_APT_SOURCES
elif [ -s /etc/apt/sources.list.d/debian.sources ]; then
  SOURCES=/etc/apt/sources.list.d/debian.sources
elif [ -s /etc/apt/sources.list ]; then
  SOURCES=/etc/apt/sources.list
else
  skip "no apt sources to make the base image from (set WATCHDOG_APT_SOURCES to a sources file)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/watchdog-container.XXXXXX")
CACHE=${WATCHDOG_CONTAINER_CACHE:-/var/tmp/watchdog-container-cache}
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf
COMPOSE_UP=

# podman's storage and configuration stay under $WORK. runc: crun refuses a host with
# cgroups in hybrid mode. Ulimits: podman's defaults for root can be above what the
# host allows ("error setting rlimit type 7: operation not permitted", then type 6),
# so the defaults are the host's own hard limits, the number of processes capped at
# pid_max (a higher hard limit was refused the same way).
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu); pid_max=$(cat /proc/sys/kernel/pid_max)
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; } && nproc=$pid_max
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$WORK/libpod"
[network]
network_config_dir = "$WORK/networks"
EOF
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
runroot = "$WORK/run"
graphroot = "$WORK/storage"
EOF

cleanup() {
  # Only ever with the storage under $WORK: never the host's own.
  if grep -q "graphroot = \"$WORK/storage\"" "$CONTAINERS_STORAGE_CONF" 2>/dev/null; then
    if [ -n "$COMPOSE_UP" ]; then
      (cd "$DOCKER_DIR" && timeout 60 podman-compose -p wdtest -f compose.yaml down -t 0) >/dev/null 2>&1
    fi
    timeout 60 podman rm -a -f -t 0 >/dev/null 2>&1
    timeout 120 podman system reset --force >/dev/null 2>&1
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# conmon writes a file named "oom" into its working directory when a container meets
# its memory limit: keep it in ours.
cd "$WORK" || exit 1

pm() { timeout 120 podman "$@"; }

# --- helpers -----------------------------------------------------------------

# wait_for SECONDS COMMAND...: true once COMMAND succeeds, false when time runs out.
wait_for() {
  local deadline=$(($(now_ms) + $1 * 1000)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

http_ok() { [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/")" = 200 ]; }
ssh_banner() { timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -c 8 <&3' _ "$1" | grep >/dev/null '^SSH-2.0'; }
host_port() { pm port "$1" "$2/tcp" | sed -n '1s/.*://p'; }
healthy() { pm healthcheck run "$1" >/dev/null 2>&1; }  # exit 0: healthy
running() { [ "$(pm inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
logs() { pm logs "$1" 2>&1; }
logs_have() { logs "$1" | grep -E >/dev/null -- "$2"; }
exit_code() { pm inspect --format '{{.State.ExitCode}}' "$1"; }

# The time (ms since the epoch) of each of the watchdog's log lines in container $1 whose
# message matches $2. A service's output may precede a line without a newline of its
# own, so the line is found by its timestamp, wherever it starts.
log_times() {
  local stamp
  logs "$1" | grep -oE -- "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+[+-][0-9]{2}:[0-9]{2} watchdog: (warning: )?($2)" \
    | while read -r stamp _; do date -d "$stamp" +%s%3N; done
}

# The first of those at or after $2 (ms): log_ms CONTAINER SINCE PATTERN.
log_ms() { log_times "$1" "$3" | awk -v since="$2" '!found && $1 >= since { print; found = 1 } END { exit !found }'; }

seconds() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }

# The pids of rule $2 in container $1, from the running watchdog's status.
rule_pids() {
  # NAME STATE PIDS ...; exits 1 while a rule is not running, and still prints the table
  { pm exec "$1" watchdog --status || true; } | awk -v rule="$2" '$1 == rule && $3 != "-" { gsub(",", " ", $3); print $3 }'
}

# Show what the container said when a check failed.
show_logs() { logs "$1" | tail -n "${2:-25}" | sed "s/^/    $1| /"; }

expect() {  # expect CONTAINER DESCRIPTION COMMAND...
  local name=$1 what=$2; shift 2
  if "$@"; then pass "$name: $what"; else fail "$name: $what"; show_logs "$name"; fi
}

run_container() {  # run_container NAME PODMAN-RUN-ARGS...: false (and FAIL) if it does not start
  local name=$1; shift
  if ! pm run -d --name "$name" "$@" >"$WORK/$name.run" 2>&1; then
    fail "$name: podman run: $(grep -v 'systemd' "$WORK/$name.run" | tail -n 1)"
    return 1
  fi
}

# --- the image -----------------------------------------------------------------

note "base image $BASE_NAME ($SUITE from the host's apt sources)"
# The host's extra CA certificates go in (outgoing TLS may be intercepted by one), and
# pip is pointed at the system bundle, which holds them.
# shellcheck disable=SC2054  # the commas separate packages
BASE_ARGS=(--format=tar --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates)
[ -d /usr/local/share/ca-certificates ] && \
  BASE_ARGS+=(--customize-hook='copy-in /usr/local/share/ca-certificates /usr/local/share')
# shellcheck disable=SC2016  # $1 is mmdebstrap's: the new system's directory
BASE_ARGS+=(--customize-hook='chroot "$1" update-ca-certificates'
            --customize-hook='printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" >"$1/etc/pip.conf"')
# The cache key: what the base image is made of, so a change to any of it makes a new one.
KEY=$({ echo "${BASE_ARGS[*]} $SUITE"; cat "$SOURCES"; cat /usr/local/share/ca-certificates/* 2>/dev/null; } \
  | sha256sum | cut -c1-16)
BASE_TAR=$CACHE/base-$SUITE-$KEY.tar
mkdir -p "$CACHE"
started=$(now_ms)
if [ ! -s "$BASE_TAR" ]; then
  rm -f "$CACHE"/base-*.tar "$CACHE"/base-*.tar.part  # older recipes'
  if ! mmdebstrap "${BASE_ARGS[@]}" "$SUITE" "$BASE_TAR.part" "$SOURCES" >"$WORK/mmdebstrap.log" 2>&1; then
    fail "base image: mmdebstrap failed: $(tail -n 3 "$WORK/mmdebstrap.log" | tr '\n' ' ')"
    exit 1
  fi
  mv "$BASE_TAR.part" "$BASE_TAR"
  figure "base image made in $(seconds $(($(now_ms) - started))) s"
else
  figure "base image from the cache ($BASE_TAR)"
fi
if ! pm import "$BASE_TAR" "$BASE_NAME" >"$WORK/import.log" 2>&1; then
  fail "base image: podman import: $(tail -n 1 "$WORK/import.log")"
  exit 1
fi

note "podman build --format docker -f examples/docker/Dockerfile -t $IMAGE ."
started=$(now_ms)
# --format docker keeps the HEALTHCHECK (the OCI format has no place for it);
# --pull=never: the base image is the one just imported.
if pm build --pull=never --format docker -f "$DOCKER_DIR/Dockerfile" -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1; then
  pass "image: built"
  figure "image built in $(seconds $(($(now_ms) - started))) s"
else
  fail "image: podman build failed:"
  tail -n 20 "$WORK/build.log" | sed 's/^/    build| /'
  exit 1
fi
if [ "$(pm image inspect --format '{{json .Config.Healthcheck.Test}}' "$IMAGE")" = '["CMD","watchdog","--status"]' ]; then
  pass "image: HEALTHCHECK CMD watchdog --status kept"
else
  fail "image: HEALTHCHECK lost"
fi

# Services the faults need, mounted read-only at /faults.
FAULTS=$WORK/faults
mkdir -p "$FAULTS"
cat >"$FAULTS/forkbomb" <<'EOF'
#!/usr/bin/python3
"""Once /tmp/forkbomb.go exists: fork until the pid limit refuses, and keep every slot
taken for HOLD seconds; the first process exits 1 when it can fork no more, so the
watchdog must start it again while nothing can fork. The slot that exit frees is the
watchdog's to race for when it reaps, so a run that gets through while the bomb holds
exits 1 at once, as a service that cannot fork would: the next start waits out the
backoff, by which time the bomb has taken the slot back. Runs after the bomb are calm.
Its forks start with its name, so the rule follows the pid it writes to
/run/forkbomb.pid."""
import ctypes
import os
import signal
import sys
import time

HOLD = float(sys.argv[1])
DONE = "/tmp/forkbomb.done"  # holds the time the bomb ends
with open("/run/forkbomb.pid", "w") as pidfile:
    pidfile.write(f"{os.getpid()}\n")
if os.path.exists(DONE):
    with open(DONE) as done:
        if time.time() < float(done.read() or 0):
            sys.exit(1)
    while True:
        time.sleep(3600)
while not os.path.exists("/tmp/forkbomb.go"):
    time.sleep(0.05)
with open(DONE + ".new", "w") as done:
    done.write(f"{time.time() + HOLD}\n")
os.rename(DONE + ".new", DONE)
end = time.monotonic() + HOLD


class ParentGone(Exception):
    pass


def parent_gone(signum, frame):
    raise ParentGone


first, rush_until = True, 0.0
while time.monotonic() < end:
    try:
        try:
            pid = os.fork()
        except OSError:
            if first:
                os._exit(1)
            if time.monotonic() > rush_until:
                time.sleep(0.02)
            continue
        if pid == 0:
            if first:  # told when the first process dies, to take the slot its exit frees
                signal.signal(signal.SIGUSR1, parent_gone)
                ctypes.CDLL(None).prctl(1, signal.SIGUSR1)  # PR_SET_PDEATHSIG
                # Out of the command's process group, as a daemonizing bomb would be: the
                # watchdog stops what a crashed command leaves in its group before it runs
                # again, which would end a bomb that stayed there before it held the limit.
                os.setsid()
                first = False
            with open("/proc/self/comm", "w") as comm:
                comm.write("bomblet")
    except ParentGone:
        rush_until = time.monotonic() + 0.5
os._exit(0)
EOF
cat >"$FAULTS/memhog" <<'EOF'
#!/usr/bin/python3
"""First run: grow by 8 MB every 20 ms, every page written, until the OOM killer ends it.
Later runs are calm."""
import os
import time

if not os.path.exists("/tmp/memhog.done"):
    open("/tmp/memhog.done", "w").close()
    hoard = []
    while True:
        hoard.append(b"\1" * (8 << 20))
        time.sleep(0.02)
while True:
    time.sleep(3600)
EOF
cat >"$FAULTS/stubborn" <<'EOF'
#!/usr/bin/python3
"""A service that ignores SIGTERM."""
import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(3600)
EOF
chmod 755 "$FAULTS"/*
MOUNT_FAULTS=(-v "$FAULTS:/faults:ro")

# --- the seed's docker run line -------------------------------------------------

scenario_seed() {
  local c=seed
  note "$c: podman run -d -p 127.0.0.1::22 -p 127.0.0.1::80 $IMAGE /usr/sbin/sshd \"/etc/init.d/apache2 start\""
  run_container $c -p 127.0.0.1::22 -p 127.0.0.1::80 "$IMAGE" "${SEED_COMMANDS[@]}" || return
  local http ssh
  http=$(host_port $c 80); ssh=$(host_port $c 22)
  expect $c "apache2 answers HTTP 200 on the published port" wait_for 30 http_ok "$http"
  expect $c "sshd answers with an SSH banner on the published port" wait_for 30 ssh_banner "$ssh"
  expect $c "logs: the watchdog started sshd" logs_have $c "watchdog: sshd: started '/usr/sbin/sshd'"
  expect $c "logs: the watchdog started apache2" logs_have $c "watchdog: apache2: started '/etc/init.d/apache2 start'"
  expect $c "logs: apache2's own lines" logs_have $c "Starting Apache httpd web server"
  expect $c "podman healthcheck run: healthy" wait_for 30 healthy $c
  expect $c "health status healthy" test "$(pm inspect --format '{{.State.Health.Status}}' $c)" = healthy

  # kill -9 of every apache2 process inside (pidof: the image has no pkill), once the init
  # script has returned: while it runs, the rule is "starting" and the script itself
  # waits up to 20 s for the apache2 it started (see README).
  expect $c "apache2's init script is done" wait_for 30 logs_have $c "apache2: exited pid=[0-9]+ status=0"
  local old killed
  old=$(rule_pids $c apache2)
  killed=$(now_ms)
  pm exec $c sh -c 'kill -9 $(pidof apache2)'
  # shellcheck disable=SC2329
  apache_back() { local new; new=$(rule_pids $c apache2) && [ -n "$new" ] && [ "$new" != "$old" ] && http_ok "$http"; }
  expect $c "kill -9 of apache2 inside: started again and serving" wait_for 20 apache_back
  local exited restarted found
  exited=$(log_ms $c "$killed" "apache2: exited") && restarted=$(log_ms $c "$exited" "apache2: started") \
    && found=$(log_ms $c "$exited" "apache2: running")
  if [ -n "$found" ]; then
    figure "$c: apache2 killed -9: init script started $((restarted - exited)) ms, apache2 running $((found - exited)) ms after the watchdog saw it die (its log)"
  else
    fail "$c: no 'apache2: exited' and 'running' lines after the kill"; show_logs $c
  fi

  # SIGHUP to the container: forwarded; apache2 reloads (its error log says so), both stay up.
  local hup; hup=$(now_ms)
  pm kill -s HUP $c >/dev/null
  # shellcheck disable=SC2329
  apache_reloaded() { pm exec $c grep -q 'SIGHUP received' /var/log/apache2/error.log; }
  expect $c "kill -s HUP: the watchdog forwards it" wait_for 10 logs_have $c "forwarding SIGHUP"
  expect $c "kill -s HUP: apache2 got it ('SIGHUP received' in its error log)" wait_for 10 apache_reloaded
  expect $c "after HUP: HTTP 200 and an SSH banner" wait_for 20 eval "http_ok $http && ssh_banner $ssh"
  local hup_seen; hup_seen=$(log_ms $c "$hup" "forwarding SIGHUP") && \
    figure "$c: SIGHUP forwarded $((hup_seen - hup)) ms after podman kill -s HUP (host clock, podman's own time included)"

  local began took code
  began=$(now_ms)
  pm stop -t 10 $c >/dev/null 2>&1
  took=$(($(now_ms) - began)); code=$(exit_code $c)
  expect $c "podman stop -t 10: exit code 0 (was $code)" test "$code" = 0
  expect $c "podman stop -t 10: done in $(seconds $took) s, well under 10 s" test "$took" -lt 5000
  # shellcheck disable=SC2329
  caught_term() { pm cp $c:/var/log/apache2/error.log - | tar -xO | grep >/dev/null 'caught SIGTERM, shutting down'; }
  expect $c "podman stop: apache2 shut down gracefully ('caught SIGTERM' in its error log)" caught_term
  figure "$c: podman stop -t 10 took $(seconds $took) s, exit code $code; the watchdog's own line: $(logs $c | grep -o 'stopped in .*' | tail -n 1)"
}

# --- compose.yaml with podman-compose -------------------------------------------

scenario_compose() {
  local c=wdtest_demo_1 compose=(podman-compose -p wdtest -f compose.yaml)
  note "compose: ${compose[*]} up -d --no-build (the image just built)"
  local port
  for port in 8080 2222; do
    if timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$port" 2>/dev/null; then
      fail "compose: port $port is taken on this machine; compose.yaml publishes 8080 and 2222"
      return
    fi
  done
  COMPOSE_UP=1
  if ! (cd "$DOCKER_DIR" && timeout 120 "${compose[@]}" up -d --no-build) >"$WORK/compose-up.log" 2>&1; then
    fail "compose: up failed: $(grep -iv systemd "$WORK/compose-up.log" | tail -n 3 | tr '\n' ' ')"
    return
  fi
  pass "compose: up"
  expect $c "HTTP 200 on port 8080" wait_for 30 http_ok 8080
  expect $c "SSH banner on port 2222" wait_for 30 ssh_banner 2222
  expect $c "podman healthcheck run (compose's healthcheck): healthy" wait_for 30 healthy $c
  local began took code
  began=$(now_ms)
  (cd "$DOCKER_DIR" && timeout 60 "${compose[@]}" stop) >/dev/null 2>&1
  took=$(($(now_ms) - began)); code=$(exit_code $c)
  expect $c "compose stop: exit code 0 (was $code) in $(seconds $took) s" test "$code" = 0
  (cd "$DOCKER_DIR" && timeout 60 "${compose[@]}" down) >"$WORK/compose-down.log" 2>&1
  expect $c "compose down: no container left" test -z "$(pm ps -a -q --filter name=$c)"
  COMPOSE_UP=
}

# --- faults -------------------------------------------------------------------------

scenario_pids() {
  local c=pids limit=100 hold=6
  note "$c: --pids-limit $limit, a fork bomb beside apache2 and sshd"
  run_container $c --pids-limit $limit -p 127.0.0.1::80 "${MOUNT_FAULTS[@]}" "$IMAGE" \
    --pidfile forkbomb=/run/forkbomb.pid "${SEED_COMMANDS[@]}" "/faults/forkbomb $hold" || return
  local http; http=$(host_port $c 80)
  expect $c "apache2 serves before the bomb" wait_for 30 http_ok "$http"
  expect $c "the fork bomb's first run is up" wait_for 30 logs_have $c "watchdog: forkbomb: running"
  # Once apache2's init script is done: it forks too, and would fail.
  expect $c "apache2's init script is done" wait_for 30 logs_have $c "apache2: exited pid=[0-9]+ status=0"
  pm exec $c touch /tmp/forkbomb.go
  expect $c "forks fail: the watchdog logs a failed start and keeps running" \
    wait_for 20 logs_have $c "forkbomb: cannot start .*(Resource temporarily unavailable|Try again)"
  local served=0
  for _ in 1 2 3 4 5; do http_ok "$http" && served=$((served + 1)); sleep 0.3; done
  expect $c "apache2 keeps serving while no process can fork ($served/5 requests: HTTP 200)" test $served = 5
  expect $c "after the bomb: forkbomb started again and running" wait_for 30 eval \
    "logs $c | sed -n '/cannot start/,\$p' | grep >/dev/null 'forkbomb: running'"
  local failed gaps
  failed=$(logs $c | grep -c 'forkbomb: cannot start')
  gaps=$(log_times $c "forkbomb: cannot start" | awk 'NR > 1 { printf "%s%d", sep, $1 - prev; sep = ", " } { prev = $1 }')
  expect $c "retried with backoff: $failed failed starts, gaps (ms): $gaps" \
    eval "[ $failed -ge 3 ] && echo '$gaps' | awk -F', ' '{ for (i = 2; i <= NF; i++) if (\$i < 0.9 * \$(i - 1)) exit 1; if (\$NF < 1.8 * \$1) exit 1 }'"
  # The waits grow: none shorter than the one before, the last at least 1.8x the first. A busy
  # host stretches a single wait (349 ms for a 250 ms backoff was seen), so no ratio per step.
  expect $c "the watchdog is still PID 1 and running" running $c
  expect $c "apache2 and sshd still up: HTTP 200, healthy" wait_for 30 eval "http_ok $http && healthy $c"
  figure "$c: $failed starts refused by the pid limit, retried after $gaps ms"
}

scenario_memory() {
  local c=memory limit=128m
  note "$c: --memory $limit --memory-swap $limit, a service growing past it"
  run_container $c --memory $limit --memory-swap $limit "${MOUNT_FAULTS[@]}" "$IMAGE" \
    /usr/sbin/sshd /faults/memhog || return
  expect $c "the OOM kill is answered: memhog exited -9, started again" \
    wait_for 60 eval "logs $c | sed -n '/memhog: exited .*status=-9/,\$p' | grep >/dev/null 'memhog: running'"
  local died restarted back
  died=$(log_ms $c 0 "memhog: exited .*status=-9") && restarted=$(log_ms $c "$died" "memhog: started") \
    && back=$(log_ms $c "$died" "memhog: running") && \
    figure "$c: memhog OOM-killed (status -9): started again $((restarted - died)) ms, running $((back - died)) ms later (watchdog's log)"
  local cgroup kills
  cgroup=$(grep ':memory:' "/proc/$(pm inspect --format '{{.State.Pid}}' $c)/cgroup" | cut -d: -f3)
  kills=$(awk '$1 == "oom_kill" { print $2 }' "/sys/fs/cgroup/memory$cgroup/memory.oom_control" 2>/dev/null)
  [ -n "$kills" ] && figure "$c: the kernel counted $kills OOM kill(s) in the container's memory cgroup"
  expect $c "the watchdog survives: running, sshd still running" eval "running $c && healthy $c"
  pm rm -f -t 0 $c >/dev/null 2>&1
}

scenario_read_only() {
  local c=readonly
  note "$c: --read-only with tmpfs on /run only"
  run_container $c --read-only --read-only-tmpfs=false --tmpfs /run "$IMAGE" "${SEED_COMMANDS[@]}" || return
  expect $c "apache2 cannot start (its init script needs /tmp): the watchdog retries with backoff" \
    wait_for 20 logs_have $c "apache2: restarting in"
  expect $c "sshd runs (its /run/sshd is copied up into the tmpfs)" wait_for 20 eval "rule_pids $c sshd | grep >/dev/null ."
  expect $c "watchdog --status says unhealthy, the watchdog keeps running" eval "! healthy $c && running $c"
  pm rm -f -t 0 $c >/dev/null 2>&1
  c=readonly-ok
  note "$c: --read-only with tmpfs on /run, /tmp and /var/log/apache2"
  run_container $c --read-only --read-only-tmpfs=false --tmpfs /run --tmpfs /tmp --tmpfs /var/log/apache2 \
    -p 127.0.0.1::80 "$IMAGE" "${SEED_COMMANDS[@]}" || return
  local http; http=$(host_port $c 80)
  expect $c "HTTP 200 and healthy" wait_for 30 eval "http_ok $http && healthy $c"
  pm rm -f -t 0 $c >/dev/null 2>&1
}

scenario_user() {
  local c=user uid=1000
  note "$c: --user $uid:$uid, that user's own services"
  run_container $c --user $uid:$uid -p 127.0.0.1::8000 "$IMAGE" \
    --match regex "python3 -m http.server 8000" "sleep 600" || return
  local http; http=$(host_port $c 8000)
  expect $c "the user's web server answers HTTP 200" wait_for 30 http_ok "$http"
  expect $c "healthy (status file under /tmp/watchdog-$uid)" wait_for 30 healthy $c
  local old; old=$(rule_pids $c python3)
  expect $c "the services run as uid $uid" test "$(pm exec $c stat -c %u "/proc/$old")" = $uid
  pm exec $c kill -9 "$old"
  # shellcheck disable=SC2329
  web_back() { local new; new=$(rule_pids $c python3) && [ -n "$new" ] && [ "$new" != "$old" ] && http_ok "$http"; }
  expect $c "kill -9 of the web server: started again and serving" wait_for 20 web_back
  local began took code
  began=$(now_ms); pm stop -t 10 $c >/dev/null 2>&1; took=$(($(now_ms) - began)); code=$(exit_code $c)
  expect $c "podman stop: exit code 0 (was $code) in $(seconds $took) s" test "$code" = 0
}

scenario_stubborn() {
  local c=stubborn
  note "$c: a service that ignores SIGTERM, podman stop -t 10"
  run_container $c "${MOUNT_FAULTS[@]}" "$IMAGE" /usr/sbin/sshd /faults/stubborn || return
  expect $c "both services running" wait_for 30 healthy $c
  local began took code
  began=$(now_ms); pm stop -t 10 $c >/dev/null 2>&1; took=$(($(now_ms) - began)); code=$(exit_code $c)
  expect $c "killed at the watchdog's grace: exit code 4 (was $code)" test "$code" = 4
  expect $c "the watchdog SIGKILLed it" logs_have $c "still running after the grace, sending SIGKILL: stubborn"
  expect $c "stopped in $(seconds $took) s: after the 8 s grace, before podman's 10 s" \
    eval "[ $took -ge 7500 ] && [ $took -lt 10000 ]"
  figure "$c: podman stop -t 10 took $(seconds $took) s, exit code $code"
}

# --- examples/kubernetes/pod.yaml with podman kube play -------------------------

# The pod as a kubelet would run it, with its HTTP probes on the watchdog's probe port.
# podman turns the livenessProbe into a health check that runs curl inside the container
# when asked (`podman healthcheck run`: no systemd timer here); the three endpoints are
# also asked from the host at the pod's address, as a kubelet asks them. apache2 is killed
# inside and must serve again within 1 s, the container never restarted by the runtime;
# then the pod is deleted as a kubelet deletes one, and must have stopped gracefully.
scenario_kube() {
  local pod=watchdog-demo c=watchdog-demo-demo  # podman names a pod's container POD-CONTAINER
  local yaml=$WORK/pod.yaml apache_logs=$WORK/pod-apache2-logs log=$WORK/kube-container.log
  mkdir -p "$apache_logs"
  # The example as it is, but:
  # - without `ports`: podman 4 publishes each containerPort on the host's same port
  #   (22, 80, 8081 on every address), which a kubelet never does; probes name the port;
  # - with a host directory for apache2's logs, which must outlive the pod (pod.yaml ends
  #   with its container's fields: these lines extend them, then the spec).
  { awk '/^      ports:/ { skip = 1; next } skip && /^      [^ -]/ { skip = 0 } !skip' \
      "$ROOT/examples/kubernetes/pod.yaml"
    cat <<EOF
      volumeMounts:
        - name: apache2-logs
          mountPath: /var/log/apache2
  volumes:
    - name: apache2-logs
      hostPath:
        path: $apache_logs
        type: Directory
EOF
  } >"$yaml"
  note "kube: podman kube play examples/kubernetes/pod.yaml (image $IMAGE; apache2's logs kept on the host)"
  # The container's log in a file of ours, to read after the pod is removed.
  if ! pm kube play --log-opt "path=$log" "$yaml" >"$WORK/kube-play.log" 2>&1; then
    fail "kube: podman kube play: $(grep -v systemd "$WORK/kube-play.log" | tail -n 2 | tr '\n' ' ')"
    return
  fi
  pass "kube: podman kube play"
  local ip probe_port id grace
  ip=$(pm inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' \
    "$(pm pod inspect --format '{{.InfraContainerID}}' $pod)")
  probe_port=$(grep -o -- '"--probe-address", "[0-9]*"' "$yaml" | grep -o '[0-9]*"$' | tr -d '"')
  grace=$(awk '$1 == "terminationGracePeriodSeconds:" { print $2 }' "$yaml")
  id=$(pm inspect --format '{{.Id}}' $c)
  # shellcheck disable=SC2329
  probe_ok() { [ "$(curl -s -m 2 "http://$ip:$probe_port/$1")" = ok ]; }
  # shellcheck disable=SC2329
  pod_http_ok() { [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$ip/")" = 200 ]; }
  # shellcheck disable=SC2329
  pod_running() { [ "$(pm pod inspect --format '{{.State}}' $pod 2>/dev/null)" = Running ]; }
  expect $c "the pod runs" wait_for 30 pod_running
  expect $c "apache2 answers HTTP 200 at the pod's address ($ip)" wait_for 30 pod_http_ok
  expect $c "/startupz, /readyz and /livez answer 200 ok at the pod's address, port $probe_port" \
    wait_for 30 eval "probe_ok startupz && probe_ok readyz && probe_ok livez"
  expect $c "podman healthcheck run (the livenessProbe, curl inside): healthy" wait_for 30 healthy $c
  expect $c "podman inspect: health status healthy" \
    test "$(pm inspect --format '{{.State.Health.Status}}' $c)" = healthy
  expect $c "logs: the watchdog serves the probes" \
    logs_have $c "probes: serving /livez, /readyz and /startupz on .*:$probe_port"

  expect $c "apache2's init script is done" wait_for 30 logs_have $c "apache2: exited pid=[0-9]+ status=0"
  local before old back
  before=$(pm inspect --format '{{.RestartCount}} {{.State.Pid}} {{.State.StartedAt}}' $c)
  old=$(rule_pids $c apache2)
  # Killed and timed inside the container, so podman exec's own delay is not counted.
  # shellcheck disable=SC2016  # expanded inside the container
  back=$(pm exec $c sh -c 'kill -9 $(pidof apache2); t0=$(date +%s%N)
    until curl -sf -o /dev/null -m 1 http://127.0.0.1/; do
      [ $(($(date +%s%N) - t0)) -lt 10000000000 ] || { echo never; exit; }
      sleep 0.01
    done
    echo $((($(date +%s%N) - t0) / 1000000))')
  expect $c "kill -9 of apache2 inside the pod: HTTP 200 again after $back ms, within 1 s" \
    eval "[ '$back' != never ] && [ '$back' -lt 1000 ]"
  figure "kube: apache2 killed -9 inside the pod: serving again $back ms later (curl inside, every 10 ms)"
  # shellcheck disable=SC2329
  apache_new() { local new; new=$(rule_pids $c apache2) && [ -n "$new" ] && [ "$new" != "$old" ]; }
  expect $c "a new apache2 (pids $old before)" wait_for 10 apache_new
  expect $c "/readyz answers 200 ok again" wait_for 10 probe_ok readyz
  local after
  after=$(pm inspect --format '{{.RestartCount}} {{.State.Pid}} {{.State.StartedAt}}' $c)
  expect $c "never restarted by the runtime: restart count, PID 1 and start time unchanged ($after)" \
    test "$after" = "$before"

  # A kubelet deletes a pod with SIGTERM, terminationGracePeriodSeconds, SIGKILL: that is
  # `podman pod stop -t GRACE`. `podman kube down` alone would SIGKILL at once in podman
  # before the fix of containers/podman#22397 (2024); here it removes the stopped pod.
  local began took code
  began=$(now_ms)
  pm pod stop -t "$grace" $pod >"$WORK/kube-stop.log" 2>&1
  took=$(($(now_ms) - began))
  pm kube down "$yaml" >"$WORK/kube-down.log" 2>&1
  code=$(pm events --stream=false --filter "container=$id" --filter event=died \
    --format '{{.ContainerExitCode}}' 2>/dev/null | tail -n 1)
  expect $c "podman kube down: the pod is gone" eval "! pm pod exists $pod"
  expect $c "deleted: the watchdog exited 0 (was '$code') in $(seconds $took) s, grace ${grace} s" \
    test "$code" = 0
  expect $c "deleted: the watchdog stopped every service on SIGTERM (its log)" \
    eval "grep -q 'stopping every service (SIGTERM)' '$log' && grep -q 'watchdog: stopped in' '$log'"
  expect $c "deleted: apache2 shut down gracefully ('caught SIGTERM' in its own error log)" \
    grep -q 'caught SIGTERM, shutting down' "$apache_logs/error.log"
  figure "kube: pod stop -t $grace took $(seconds $took) s, exit code $code; the watchdog's own line: $(grep -o 'stopped in .*' "$log" | tail -n 1)"
}

# --- an image of supervisord's usual shape, under supervisord and under the watchdog ---

# examples/docker/supervisord: nginx, Debian's php-fpm and a cron-like worker under a
# supervisord.conf. The same image runs under supervisord (--entrypoint), then under its
# own ENTRYPOINT ["watchdog", "--config", "/etc/supervisor/supervisord.conf"], the file
# unchanged. Under each: it serves; kill -9 of a worker copy and of php-fpm's master, and
# the time until a new one runs (serves), side by side; podman stop. supervisord's own
# outcome is a FIGURE, the watchdog's a PASS or FAIL.
scenario_supervisord() {
  local image=watchdog-supervisord dockerfile=$DOCKER_DIR/supervisord/Dockerfile
  note "supervisord: podman build -f examples/docker/supervisord/Dockerfile -t $image ."
  local began took
  began=$(now_ms)
  # Three packages to install: more than pm's 120 s on a busy machine.
  if ! timeout 600 podman build --pull=never --format docker -f "$dockerfile" -t "$image" "$ROOT" \
      >"$WORK/build-supervisord.log" 2>&1; then
    fail "supervisord: podman build failed:"
    tail -n 20 "$WORK/build-supervisord.log" | sed 's/^/    build| /'
    return
  fi
  figure "supervisord: image built in $(seconds $(($(now_ms) - began))) s"
  # The page php-fpm serves through nginx: "php-fpm PID".
  php_ok() { curl -s -m 2 "http://127.0.0.1:$1/index.php" | grep -q '^php-fpm [0-9]'; }
  # The pids of processes in container $1 whose command line starts with $2.
  pids_of() {
    pm exec "$1" sh -c 'for d in /proc/[0-9]*; do
      case "$(tr "\0" " " <"$d/cmdline" 2>/dev/null)" in "$0"*) echo "${d#/proc/}";; esac
    done' "$2"
  }
  # The time (ms) of the first line of supervisord's log in container $1 at or after $2 (ms)
  # that matches $3: its lines begin "2026-12-02 13:35:19,323".
  sv_log_ms() {
    logs "$1" | grep -E -- "$3" | while read -r day time _; do date -d "$day ${time/,/.}" +%s%3N; done \
      | awk -v since="$2" '!found && $1 >= since { print; found = 1 } END { exit !found }'
  }
  local worker_cmd="/bin/sh -c while true; do date"
  local runner c http old code worker_times=() fpm_times=()
  for runner in supervisord watchdog; do
    c=sv-$runner
    if [ $runner = supervisord ]; then
      note "$c: podman run --entrypoint supervisord $image (-c /etc/supervisor/supervisord.conf)"
      run_container $c -p 127.0.0.1::80 --entrypoint '["supervisord", "-c", "/etc/supervisor/supervisord.conf"]' \
        "$image" || continue
    else
      note "$c: podman run $image (ENTRYPOINT watchdog --config /etc/supervisor/supervisord.conf)"
      run_container $c -p 127.0.0.1::80 "$image" || continue
    fi
    http=$(host_port $c 80)
    expect $c "nginx and php-fpm serve a PHP page" wait_for 30 php_ok "$http"
    # shellcheck disable=SC2329
    two_workers() { [ "$(pids_of $c "$worker_cmd" | grep -cv "^$1\$")" = 2 ]; }
    expect $c "both worker copies run" wait_for 10 two_workers none
    # A worker copy: both restart it.
    old=$(pids_of $c "$worker_cmd" | head -n 1)
    began=$(now_ms)
    # The kill's own time, taken in the container (the host's clock) just before it.
    local killed
    killed=$(pm exec $c sh -c 'date +%s%3N; kill -9 "$0"' "$old")
    if wait_for 30 two_workers "$old"; then
      took=$(($(now_ms) - began))
      pass "$c: kill -9 of a worker copy (pid $old): running again after $(seconds $took) s"
      # From the kill to the new copy's start in the runner's own log.
      local name spawned
      if [ $runner = supervisord ]; then
        name=$(logs $c | grep -oE "spawned: '[^']+' with pid $old\$" | cut -d"'" -f2)
        spawned=$(sv_log_ms $c "$killed" "INFO spawned: '$name'")
      else
        name=$(logs $c | grep -oE "watchdog: [^ ]+: started .* pid=$old\$" | cut -d' ' -f2 | tr -d :)
        spawned=$(log_ms $c "$killed" "$name: started")
      fi
      if [ -n "$spawned" ] && [ -n "$killed" ]; then
        worker_times+=("$runner $((spawned - killed)) ms")
      else
        worker_times+=("$runner: no start in its log")
      fi
    else
      fail "$c: kill -9 of a worker copy (pid $old): not running again after 30 s"
      worker_times+=("$runner: not back in 30 s")
    fi
    # php-fpm's master: its workers live on and hold the socket a new master must bind.
    old=$(pids_of $c "php-fpm: master")
    # shellcheck disable=SC2329
    fpm_back() { local new; new=$(pids_of $c "php-fpm: master") && [ -n "$new" ] && [ "$new" != "$old" ] && php_ok "$http"; }
    began=$(now_ms)
    pm exec $c kill -9 "$old"
    if wait_for 30 fpm_back; then
      took=$(($(now_ms) - began))
      fpm_times+=("$runner $(seconds $took) s")
      if [ $runner = watchdog ]; then
        pass "$c: kill -9 of php-fpm's master (pid $old): a new master serves after $(seconds $took) s"
      else
        figure "$c: php-fpm serving again after $(seconds $took) s, after $(logs $c | grep -c 'Another FPM instance seems to already listen') failed starts"
      fi
    else
      fpm_times+=("$runner: not back in 30 s")
      if [ $runner = watchdog ]; then
        fail "$c: kill -9 of php-fpm's master (pid $old): no new master serving after 30 s"
        show_logs $c
      else
        local failed fatal=""
        failed=$(logs $c | grep -c 'Another FPM instance seems to already listen')
        logs_have $c "gave up: php-fpm entered FATAL" && fatal=", then FATAL (gave up)"
        figure "$c: php-fpm not back after kill -9 of its master: $failed starts failed, the old workers holding its socket$fatal"
      fi
    fi
    if [ $runner = watchdog ]; then
      expect $c "the watchdog said it ignores supervisord.conf's control sections" \
        logs_have $c "\[unix_http_server\] ignored: .*watchdogctl"
      expect $c "the watchdog stopped php-fpm's old workers before starting it again" \
        logs_have $c "php-fpm: main process [0-9]+ died .* stopping them"
    fi
    if running $c; then
      began=$(now_ms); pm stop -t 10 $c >/dev/null 2>&1; took=$(($(now_ms) - began)); code=$(exit_code $c)
      expect $c "podman stop: graceful, exit code 0 (was $code) in $(seconds $took) s" test "$code" = 0
    else
      figure "$c: had already exited (code $(exit_code $c)): its exit_on_fatal event listener ended supervisord"
    fi
  done
  figure "supervisord image, kill -9 of a worker copy until its new copy starts (each one's log): ${worker_times[*]}"
  figure "supervisord image, kill -9 of php-fpm's master until a new one serves: ${fpm_times[*]}"
}

started=$(now_ms)
for scenario in "${SCENARIOS[@]}"; do "scenario_$scenario"; done
figure "container scenarios took $(seconds $(($(now_ms) - started))) s"
echo "container test: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
