#!/usr/bin/env bash
# scripts/ceph.sh -- a throwaway single-node Ceph with the S3 gateway, for tests and benchmarks.
#
#   scripts/ceph.sh up DIR [PORT]          start (or find running) mon + memstore OSD + radosgw on
#                                          127.0.0.1:PORT (default 17480); prints S3_* lines
#   scripts/ceph.sh down DIR               stop what `up` (and `gateway`) started from DIR
#   scripts/ceph.sh status DIR             exit 0 when the cluster in DIR answers S3 requests
#   scripts/ceph.sh gateway DIR NAME PORT  start one more radosgw (client.NAME) on PORT, same cluster
#   scripts/ceph.sh kill-gateway DIR NAME  SIGKILL that extra gateway (fault tests)
#   scripts/ceph.sh lease DIR PID          record that process PID uses the cluster
#   scripts/ceph.sh release DIR PID        drop that lease; stop the cluster when no live process
#                                          holds one (test runs share one cluster this way)
#
# Everything lives under DIR: ceph.conf, mon and OSD data, logs, pid files, s3.env. Nothing
# under /etc/ceph or /var/lib/ceph is read or written. No cephx (auth none everywhere), the
# OSD keeps objects in RAM (memstore: nothing survives a stop), path-style S3 only. Ceph's
# monitor ports 3300 and 6789 cannot be moved, so there is one such cluster per machine.
#
# Every command is bounded in time (CEPH_TIMEOUT, default 120 s, for `up`/`gateway`) and
# signals only processes whose command line names DIR/ceph.conf, found through DIR's pid files.
# Concurrent callers are serialised by flock(1) on DIR/.lock, and `up` on a running cluster
# only prints its credentials, so several test workers may all call `up`.
# A failed `up` stops whatever it started and leaves DIR/log for a post-mortem.
# Packages (Debian 12): ceph-mon ceph-osd radosgw ceph-common curl.
set -euo pipefail

fail() { echo "ceph.sh: $*" >&2; exit 1; }
usage() { fail "usage: $0 up DIR [PORT] | down DIR | status DIR | gateway DIR NAME PORT | kill-gateway DIR NAME | lease DIR PID | release DIR PID"; }

[ $# -ge 2 ] || usage
CMD=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
CONF=$DIR/ceph.conf
LIMIT=${CEPH_TIMEOUT:-120}
START=$SECONDS
CLI=(-c "$CONF" --connect-timeout 10)

# ---- helpers -----------------------------------------------------------------------------

# the pid in pid file $1, if that process is alive and was started with our ceph.conf
owned_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "$CONF" || return 1
  # a zombie still has its cmdline for a moment; it is not running
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  echo "$pid"
}

answers_http() { curl -s -o /dev/null -m 3 "http://127.0.0.1:$1/"; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

left() { echo $((LIMIT - (SECONDS - START))); }

# until_ok WHAT CMD...: retry CMD every 0.2 s while the time budget lasts
until_ok() {
  local what=$1; shift
  until "$@" >/dev/null 2>&1; do
    [ "$(left)" -gt 0 ] || fail "timed out after ${LIMIT}s waiting for $what (logs in $DIR/log)"
    sleep 0.2
  done
}

# daemon NAME CMD...: run a Ceph daemon that forks into the background and writes run/NAME.pid
daemon() {
  local name=$1; shift
  # 9>&-: the daemons must not inherit (and so keep holding) the flock on DIR/.lock
  if ! timeout "$(left)" "$@" >"$DIR/log/$name.out" 2>&1 9>&-; then
    cat "$DIR/log/$name.out" >&2
    fail "$name did not start (logs in $DIR/log)"
  fi
}

# stop_pidfile FILE: SIGTERM, up to 10 s, then SIGKILL, up to 5 s more
stop_pidfile() {
  local f=$1 pid i
  pid=$(owned_pid "$f") || { rm -f "$f"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do owned_pid "$f" >/dev/null || { rm -f "$f"; return 0; }; sleep 0.2; done
  echo "ceph.sh: $(basename "$f" .pid) (pid $pid) ignored SIGTERM for 10 s; SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 25); do owned_pid "$f" >/dev/null || { rm -f "$f"; return 0; }; sleep 0.2; done
  fail "pid $pid survived SIGKILL"
}

stop_all() {
  shopt -s nullglob
  # gateways first, then the OSD (it reports to the monitor on the way down), the monitor last
  local f
  for f in "$DIR"/run/client.*.pid; do stop_pidfile "$f"; done
  for f in "$DIR"/run/osd.*.pid; do stop_pidfile "$f"; done
  for f in "$DIR"/run/*.pid; do stop_pidfile "$f"; done
  shopt -u nullglob
}

cluster_up() {
  owned_pid "$DIR/run/mon.a.pid" >/dev/null && owned_pid "$DIR/run/osd.0.pid" >/dev/null \
    && owned_pid "$DIR/run/client.rgw.pid" >/dev/null && [ -s "$DIR/s3.env" ] \
    && answers_http "$(sed -n 's/^S3_ENDPOINT=.*:\([0-9]*\)$/\1/p' "$DIR/s3.env")"
}

need_programs() {
  local p
  for p in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool curl flock timeout; do
    command -v "$p" >/dev/null || fail "$p is missing (Debian: apt-get install ceph-mon ceph-osd radosgw ceph-common curl)"
  done
}

write_conf() {
  local port=$1 fsid=$2
  cat >"$CONF" <<EOF
# Written by scripts/ceph.sh: a disposable one-node cluster, all state under $DIR.
[global]
fsid = $fsid
mon host = 127.0.0.1
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
crash dir = $DIR/crash
mon data = $DIR/mon/\$name
osd data = $DIR/osd/\$name
keyring = $DIR/keyring
log file = $DIR/log/\$name.log
osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-4294967296}
# one OSD: no replication, few placement groups (radosgw creates about seven pools)
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
# commit cluster map changes every 0.1 s, not every second: the gateway's pool creation
# otherwise dominates start-up
paxos propose interval = 0.1
client mount timeout = 30
# a gateway killed by a fault test leaves a watch behind; metadata changes (bucket create and
# delete) wait for it to time out, 30 s by default
osd client watch timeout = 5
[client]
# without cephx the gateway must not ask for a "secure" monitor session
ms mon client mode = crc
rgw thread pool size = 32
rgw init timeout = 90
[client.rgw]
# tcp_nodelay: without it beast sends a response's body after its headers only once they are
# acknowledged, and the client's delayed ACK makes every small response (a listing, a 404, a
# manifest) take about 40 ms on loopback (docs/benchmarks.md, "Object storage")
rgw frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
EOF
}

cmd_up() {
  local port=$1
  need_programs
  if cluster_up; then cat "$DIR/s3.env"; return 0; fi
  local f
  shopt -s nullglob
  for f in "$DIR"/run/*.pid; do
    if owned_pid "$f" >/dev/null; then
      fail "part of a cluster from $DIR is still running ($(basename "$f" .pid)); run: $0 down $DIR"
    fi
  done
  shopt -u nullglob
  local p
  for p in 3300 6789 "$port"; do
    if port_taken "$p"; then fail "127.0.0.1:$p is already in use (another Ceph on this machine?)"; fi
  done

  trap 'rc=$?; if [ $rc -ne 0 ]; then stop_all || true; echo "ceph.sh: start failed; logs in $DIR/log" >&2; fi' EXIT
  rm -rf "$DIR"/{mon,osd,run,log,crash,monmap,keyring,ceph.conf,s3.env}
  mkdir -p "$DIR"/{mon/mon.a,osd/osd.0,run,log,crash}
  local fsid osd_uuid osd_id
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$port" "$fsid"

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]" "$DIR/monmap" >/dev/null
  daemon mon-mkfs ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap"
  daemon mon.a ceph-mon -c "$CONF" -i a
  until_ok "the monitor" timeout 15 ceph "${CLI[@]}" mon stat

  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  osd_id=$(timeout 30 ceph "${CLI[@]}" osd new "$osd_uuid") || fail "ceph osd new failed"
  [ "$osd_id" = 0 ] || fail "expected OSD id 0, got '$osd_id'"
  daemon osd-mkfs ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid"
  daemon osd.0 ceph-osd -c "$CONF" -i 0
  osd_in() { ceph "${CLI[@]}" osd dump 2>/dev/null | grep -q '^osd\.0 up .* in '; }
  until_ok "osd.0 to be up and in" osd_in

  daemon client.rgw radosgw -c "$CONF" -n client.rgw
  until_ok "radosgw on port $port" answers_http "$port"

  local ak sk
  ak=$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
  sk=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
  timeout "$(left)" radosgw-admin -c "$CONF" user create --uid=backup --display-name="cyrus-backupd tests" \
    --access-key="$ak" --secret-key="$sk" >"$DIR/log/user-create.json" 2>&1 \
    || { cat "$DIR/log/user-create.json" >&2; fail "radosgw-admin user create failed"; }
  printf 'S3_ENDPOINT=http://127.0.0.1:%s\nS3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\nS3_REGION=us-east-1\n' \
    "$port" "$ak" "$sk" >"$DIR/s3.env.tmp"
  mv "$DIR/s3.env.tmp" "$DIR/s3.env"
  trap - EXIT
  echo "ceph.sh: up in $((SECONDS - START)) s (CEPH_CONF=$CONF ceph -s)" >&2
  cat "$DIR/s3.env"
}

cmd_gateway() {
  local name=$1 port=$2
  [[ $name =~ ^[a-z0-9]+$ ]] && [ "$name" != rgw ] || fail "gateway name must be [a-z0-9]+ and not 'rgw'"
  cluster_up || fail "no cluster is running from $DIR"
  if owned_pid "$DIR/run/client.$name.pid" >/dev/null; then
    until_ok "radosgw $name on port $port" answers_http "$port"
    return 0
  fi
  if port_taken "$port"; then fail "127.0.0.1:$port is already in use"; fi
  daemon "client.$name" radosgw -c "$CONF" -n "client.$name" --rgw-frontends "beast endpoint=127.0.0.1:$port tcp_nodelay=1"
  until_ok "radosgw $name on port $port" answers_http "$port"
}

cmd_kill_gateway() {
  local f=$DIR/run/client.$1.pid pid i
  pid=$(owned_pid "$f") || return 0
  kill -KILL "$pid"
  for i in $(seq 25); do owned_pid "$f" >/dev/null || { rm -f "$f"; return 0; }; sleep 0.2; done
  fail "pid $pid survived SIGKILL"
}

cmd_release() {
  rm -f "$DIR/leases/$1"
  local f pid
  shopt -s nullglob
  for f in "$DIR"/leases/*; do
    pid=$(basename "$f")
    if [[ $pid =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ]; then shopt -u nullglob; return 0; fi
    rm -f "$f"   # its process is gone
  done
  shopt -u nullglob
  stop_all
}

# ---- dispatch (serialised on DIR/.lock) -----------------------------------------------------

exec 9>"$DIR/.lock"
flock -w "$LIMIT" 9 || fail "another scripts/ceph.sh held $DIR/.lock for ${LIMIT}s"
case $CMD in
  up) [ $# -le 3 ] || usage; cmd_up "${3:-17480}" ;;
  down) [ $# -eq 2 ] || usage; stop_all ;;
  status) [ $# -eq 2 ] || usage; cluster_up ;;
  gateway) [ $# -eq 4 ] || usage; cmd_gateway "$3" "$4" ;;
  kill-gateway) [ $# -eq 3 ] || usage; cmd_kill_gateway "$3" ;;
  lease) [ $# -eq 3 ] && [[ $3 =~ ^[0-9]+$ ]] || usage; mkdir -p "$DIR/leases"; : >"$DIR/leases/$3" ;;
  release) [ $# -eq 3 ] && [[ $3 =~ ^[0-9]+$ ]] || usage; cmd_release "$3" ;;
  *) usage ;;
esac
