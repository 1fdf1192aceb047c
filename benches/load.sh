#!/usr/bin/env bash
# The whole reply path, side by side with its ceiling, in one run on one machine; prints the table
# of issue #20 (docs/benchmarks.md explains each row).
#
#   benches/load.sh                         # 10 s per measurement
#   SECS=5 benches/load.sh                  # a quick pass
#   CONNS=128 benches/load.sh               # the load generator's connections (32 by default), every run
#   SVAMLGATE_BIN=/path/to/svamlgate benches/load.sh   # another build of svamlgate (e.g. an older one)
#   BURST_ONLY=1 benches/load.sh            # the burst and its catch-up alone, with where the time goes
#   WAITS=1 BURST_ONLY=1 benches/load.sh    # also samples what PostgreSQL waits on (its psql starts load the machine)
#   PERF=/tmp/p BURST_ONLY=1 benches/load.sh  # also whole-machine perf profiles: /tmp/p.burst, /tmp/p.catchup
#   TIMELINE=1 benches/load.sh              # also the 1,000/s run right after a burst, half-second by
#                                           # half-second (its sampler's curl starts add load)
#   AFTER_ONLY=1 benches/load.sh            # the burst and its catch-up, then at once (no 1,000/s run,
#                                           # no checkpoint between) the second burst and the 1,000/s
#                                           # run right after it: two bursts close together, with the
#                                           # journal's reserve refilling while the second one's
#                                           # records are shipped
#
# Builds (release) svamlgate, a bare actix-web handler from the same dependency versions
# (examples/bare.rs) and a load generator that signs every request as Sinch does and sends distinct
# ICEs (examples/loadgen.rs). Then, on this machine, with the load generator sharing its cores:
#   1. the bare handler: requests/s with CONNS (32) connections; latency at a fixed 1,000/s and 300/s;
#   2. svamlgate as shipped (durable journal, embedded PostgreSQL, an IVR flow route for the called
#      number), in this order:
#      a. burst: CONNS connections for SECS, once the journal's reserve of zero-filled segments
#         has stopped growing (a burst after a quiet moment; how many were ready is printed); then
#         the time the shipper needs to catch up, which gives
#         the sustained figure (that run's callbacks over the run plus the catch-up), and
#         PostgreSQL's CPU per row (every process of the cluster, from /proc, over the run and the
#         catch-up, divided by the rows shipped meanwhile);
#      b. 1,000/s after a drain, a CHECKPOINT and `sync` (the quiet case);
#      c. 1,000/s right after a second burst of SECS, no drain, no checkpoint: the shipper catches
#         up during the run, as it does in production;
#      d. 300/s while the embedded postgres is SIGKILLed (a third into the run) and restarted by
#         svamlgate's supervisor;
#   3. svamlgate's RSS, and the rows in PostgreSQL against the callbacks answered once the shipper
#      has drained the journal;
#   4. with svamlgate stopped, the bare handler's burst again: the ratios use the higher of its two
#      bursts (a host slow while the first was measured would flatter svamlgate).
# Only 127.0.0.1 is contacted; every run is bounded in time. Needs curl, psql and python3 besides
# the PostgreSQL server binaries; takes about four minutes after the build with SECS=10.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-10}
CONNS=${CONNS:-32}
KEY=bench-key
SECRET=YmVuY2gtc2VjcmV0
TOKEN=bench-admin

echo "== building (release)" >&2
if [ -n "${SVAMLGATE_BIN:-}" ]; then
  cargo build --release --locked --example bare --example loadgen >&2
else
  cargo build --release --locked --bin svamlgate --example bare --example loadgen >&2
fi
BIN=${CARGO_TARGET_DIR:-target}/release
SG_BIN=${SVAMLGATE_BIN:-$BIN/svamlgate}

WORK=$(mktemp -d /tmp/svamlgate-bench-XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; exit 1
}
load() { # url prefix rate [seconds]
  "$BIN/examples/loadgen" --url "$1" --key "$KEY" --secret "$SECRET" --connections "$CONNS" \
    --seconds "${4:-$SECS}" --rate "$3" --prefix "$2" --called +15550100
}
ready() { curl -s "$BASE/readyz" || true; }
start_bare() { # the bare handler on a free port, warmed up: BARE_URL, BARE_PID
  local port; port=$(free_port)
  "$BIN/examples/bare" "127.0.0.1:$port" & BARE_PID=$!
  PIDS+=("$BARE_PID")
  wait_port "$port"
  BARE_URL="http://127.0.0.1:$port/sinch/callback"
  load "$BARE_URL" warm 0 3 >/dev/null
}
stop_bare() { kill "$BARE_PID"; wait "$BARE_PID" 2>/dev/null || true; }
# The bare handler's burst once more, svamlgate and its cluster stopped first: BARE_MAX2, and
# BARE_RPS, the ceiling the ratios use: the higher of the two bursts, so that a host slow during
# one of them does not make svamlgate's ratios look better than they are.
bare_again() {
  kill "$SG" 2>/dev/null || true; wait "$SG" 2>/dev/null || true
  start_bare
  BARE_MAX2=$(load "$BARE_URL" bare-max2 0)
  stop_bare
  BARE_RPS=$(python3 -c "print(max($(field "$BARE_MAX" rps), $(field "$BARE_MAX2" rps)))")
}
metrics() { curl -s -H "authorization: Bearer $TOKEN" "$BASE/metrics"; }
lag() { # without a python3 start per look: four looks a second must not take the CPU the shipper needs
  local n
  n=$(ready | sed -n 's/.*"lagRecords":\([0-9]*\).*/\1/p')
  echo "${n:-x}"
}
drain() { # waits until the shipper has moved every journal record into PostgreSQL
  for _ in $(seq 1 2400); do
    [ "$(lag)" = 0 ] && return 0
    sleep 0.25
  done
  echo "the journal did not drain" >&2
}
spares() { metrics | awk '/^svamlgate_journal_spares_ready / {n=$2} END {print n+0}'; }
wait_spares() { # a burst after a quiet moment: waits until the journal's reserve of zero-filled
  # segments stops growing (5 s without a new one; at most 60 s; the count is printed)
  local n last=-1 since=0
  for _ in $(seq 1 240); do
    n=$(spares)
    if [ "$n" != "$last" ]; then last=$n; since=0; else since=$((since + 1)); fi
    [ "$since" -ge 20 ] && break
    sleep 0.25
  done
  echo "$last"
}
pg_home() { cat "$WORK/data/pg-location" 2>/dev/null || echo "$WORK/data"; }
pg_psql() {
  PGPASSWORD=$(cat "$WORK/data/pg-password") psql -h 127.0.0.1 -p "$(cat "$WORK/data/pg-port")" \
    -U svamlgate -d postgres -qAt "$@"
}
checkpoint() { # PostgreSQL writes out what the run before left in its buffers, then the kernel its cache
  pg_psql -c "CHECKPOINT" >/dev/null
  sync
}
pg_cpu_ticks() { # CPU time of every process of the cluster (exited backends included), in ticks
  local pm total pid
  pm=$(head -1 "$(pg_home)/pg/postmaster.pid")
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
  for pid in $(pgrep -P "$pm"); do
    [ -r "/proc/$pid/stat" ] && total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
  done
  echo "$total"
}
machine_ticks() { # "<idle+iowait ticks> <all ticks>" of the whole machine, from /proc/stat
  awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}
idle_pct() { # before after (two machine_ticks readings): the machine's idle share between them, %
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2]
    if (t > 0) printf "%.0f\n", 100 * (y[1] - x[1]) / t; else print "n/a" }'
}
stages() { # the shipper's wall time per stage so far, "stage=µs ..."
  metrics | sed -n 's/^svamlgate_ship_stage_microseconds_total{stage="\([a-z]*\)"} \([0-9]*\)$/\1=\2/p' | tr '\n' ' '
}
stage_delta() { # before after rows: µs per row of each stage between two readings of stages()
  python3 -c "
b=dict(x.split('=') for x in '$1'.split()); a=dict(x.split('=') for x in '$2'.split()); n=max($3,1)
print(', '.join(f'{k} {(int(a[k])-int(b.get(k,0)))/n:.1f}' for k in a))"
}
own_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
shipped() { metrics | awk '/^svamlgate_shipped_records_total /{print $2}'; }
field() { # line name
  sed -n "s/.*$2=\([^ ]*\).*/\1/p" <<<"$1"
}
now() { date +%s.%N; }
# Bytes written to the disk that holds the journal and the embedded cluster (both are in $WORK),
# from /proc/diskstats; 0 when the device is not found there.
DISK=$(basename "$(findmnt -no SOURCE --target "$WORK" 2>/dev/null || true)")
disk_written() { awk -v d="$DISK" '$3 == d {print $10 * 512; found=1} END {if (!found) print 0}' /proc/diskstats | head -1; }
# What the page cache holds written but not yet on the disk (the kernel writes it back within 30 s,
# a checkpoint or crash recovery at once), MB.
meminfo_mb() { awk -v k="$1:" '$1 == k {print int($2 / 1024)}' /proc/meminfo; }
dirty_mb() { meminfo_mb Dirty; }
disk_rate() { # bytes0 bytes1 seconds callbacks: "X MB/s, Y KB per callback"
  python3 -c "b=$2-$1; print(f'{b/1e6/$3:.0f} MB/s, {b/1e3/max($4,1):.1f} KB per callback' if b > 0 and $3 > 0 else 'n/a')"
}
appends() { # "<appends within 5 ms> <all appends>" from the journal's append histogram
  metrics | awk '
    /^svamlgate_journal_append_seconds_bucket\{le="0.005"\}/ {fast=$2}
    /^svamlgate_journal_append_seconds_count / {all=$2}
    END {print fast+0, all+0}'
}
slow_appends() { # before after: "N of M" appends over 5 ms between the two readings
  python3 -c "b='$1'.split(); a='$2'.split(); n=int(a[1])-int(b[1]); f=int(a[0])-int(b[0]); print(f'{n-f} of {n}')"
}
wal_written() { # "<WAL bytes> <WAL syncs> <full-page images>" PostgreSQL has written since its statistics began
  pg_psql -c "SELECT wal_bytes::bigint, wal_sync, wal_fpi FROM pg_stat_wal" 2>/dev/null | tr '|' ' ' || echo "0 0 0"
}
wal_per_row() { # before after rows: "X bytes of WAL per row, Y WAL flushes, Z full-page images per row"
  python3 -c "b='$1'.split(); a='$2'.split(); n=max($3,1); print(f'{(int(a[0])-int(b[0]))/n:.0f} bytes of WAL per row, {int(a[1])-int(b[1])} WAL flushes, {(int(a[2])-int(b[2]))/n:.3f} full-page images per row')"
}
since() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
host_memory() { # whether this VM gives freed memory back to its host (then each fresh page costs a fault into it)
  local reporting=no damon=off d k
  for d in /sys/bus/virtio/devices/*; do # a virtio balloon (device 5) with free page reporting (feature bit 5)
    [ "$(cat "$d/device" 2>/dev/null)" = 0x0005 ] && [ "$(cut -c6 "$d/features" 2>/dev/null)" = 1 ] && reporting=yes
  done
  for k in /sys/kernel/mm/damon/admin/kdamonds/*/state; do [ "$(cat "$k" 2>/dev/null)" = on ] && damon=on; done
  echo "host memory: free page reporting to the hypervisor $reporting (order $(cat /sys/module/page_reporting/parameters/page_reporting_order 2>/dev/null || echo -)), DAMON $damon (docs/benchmarks.md, session 19)"
}

echo "== bare actix-web handler" >&2
start_bare
BARE_MAX=$(load "$BARE_URL" bare-max 0)
BARE_1000=$(load "$BARE_URL" bare-1000 1000)
BARE_300=$(load "$BARE_URL" bare-300 300)
stop_bare

echo "== svamlgate (journal + embedded PostgreSQL + IVR flow route)" >&2
SP=$(free_port)
SVAMLGATE_DATA_DIR="$WORK/data" SVAMLGATE_LISTEN="127.0.0.1:$SP" \
SINCH_APPLICATION_KEY="$KEY" SINCH_APPLICATION_SECRET="$SECRET" SVAMLGATE_ADMIN_TOKEN="$TOKEN" \
RUST_LOG=warn "$SG_BIN" serve >"$WORK/svamlgate.log" 2>&1 & SG=$!
PIDS+=("$SG")
wait_port "$SP"
BASE="http://127.0.0.1:$SP"
FLOW_ID=$(curl -sf -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  --data-binary @tests/fixtures/flows/ivr.json "$BASE/admin/flows" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["flow"]["id"])')
curl -sf -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d "{\"name\":\"bench\",\"called\":\"+15550100\",\"target\":{\"kind\":\"flow\",\"flowId\":$FLOW_ID}}" \
  "$BASE/admin/routes" >/dev/null
SG_URL="$BASE/sinch/callback"
if [ -n "${PG_ALTER:-}" ]; then # settings to measure against the defaults: "name=value;name=value"
  IFS=';' read -ra SETTINGS <<<"$PG_ALTER"
  for s in "${SETTINGS[@]}"; do pg_psql -c "ALTER SYSTEM SET ${s%%=*} = '${s#*=}'" >/dev/null; done
  pg_psql -c "SELECT pg_reload_conf()" >/dev/null
  echo "PostgreSQL settings changed for this run: $PG_ALTER" >&2
fi
WARM=$(load "$SG_URL" sg-warm 0 3)
drain
checkpoint
SPARES_A=$(wait_spares)

echo "== a. burst, then the shipper's catch-up" >&2
CPU0=$(pg_cpu_ticks); SHIPPED0=$(shipped); DISK0=$(disk_written); DISK_T0=$(now); WAL0=$(wal_written)
if [ -n "${PERF:-}" ]; then # a whole-machine CPU profile of the burst (cpu-clock samples), then of its catch-up
  perf record -q -e cpu-clock -a -F 999 -o "$PERF.burst" -- sleep "$SECS" >/dev/null 2>&1 & PERF_PID=$!
fi
BURST_T0=$(machine_ticks)
SG_MAX=$(load "$SG_URL" sg-max 0)
BURST_T1=$(machine_ticks)
DRAIN_START=$(now)
if [ -n "${PERF:-}" ]; then
  wait "$PERF_PID" || true
  perf record -q -e cpu-clock -a -F 999 -o "$PERF.catchup" -- sleep 4 >/dev/null 2>&1 &
fi
if [ -n "${WAITS:-}" ]; then # what the cluster's backends wait on during the catch-up
  ( for _ in $(seq 1 30); do
      pg_psql -c "SELECT coalesce(wait_event_type,'cpu')||':'||coalesce(wait_event,'-')||':'||left(query,20) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()" 2>/dev/null
      sleep 0.05
    done | sort | uniq -c | sort -rn | head -12 >"$WORK/waits" ) &
  SAMPLER=$!
fi
CPU_MID=$(pg_cpu_ticks); SG_MID=$(own_ticks "$SG"); MT0=$(machine_ticks); ST0=$(stages); SH0=$(shipped)
drain
DRAIN_SECS=$(since "$DRAIN_START")
CPU1=$(pg_cpu_ticks); SHIPPED1=$(shipped); SG_END=$(own_ticks "$SG"); MT1=$(machine_ticks); ST1=$(stages)
DISK_A=$(disk_rate "$DISK0" "$(disk_written)" "$(since "$DISK_T0")" "$(field "$SG_MAX" ok)")
WAL_A=$(wal_per_row "$WAL0" "$(wal_written)" "$((SHIPPED1 - SHIPPED0))")
CATCHUP_CPU=$(python3 -c "
t=int('$MT1'.split()[1])-int('$MT0'.split()[1]); n=$(nproc)
print(f'machine idle $(idle_pct "$MT0" "$MT1")%, postgres {100*n*($CPU1-$CPU_MID)/t:.0f}% of a core, svamlgate {100*n*($SG_END-$SG_MID)/t:.0f}% of a core' if t else 'n/a')")
SUSTAINED=$(python3 -c "print(round($(field "$SG_MAX" ok) / ($SECS + $DRAIN_SECS)))")
CATCHUP_STAGES=$(stage_delta "$ST0" "$ST1" "$((SHIPPED1 - SH0))")
PG_US_PER_ROW=$(python3 -c "d=$SHIPPED1-$SHIPPED0; print(f'{($CPU1-$CPU0)*1e6/$(getconf CLK_TCK)/d:.0f}' if d else 'n/a')")

if [ -n "${BURST_ONLY:-}" ]; then # a quick look at the burst and its catch-up alone
  bare_again
  echo "bare handler $(field "$BARE_MAX" rps)/s before svamlgate, $(field "$BARE_MAX2" rps)/s after"
  echo "burst $(field "$SG_MAX" rps)/s against bare $BARE_RPS/s ($SPARES_A zero-filled journal segments ready when it began); sustained $SUSTAINED/s (catch-up $DRAIN_SECS s); PostgreSQL CPU per row $PG_US_PER_ROW us"
  echo "CPU during the catch-up: $CATCHUP_CPU"
  host_memory
  echo "machine idle during the burst: $(idle_pct "$BURST_T0" "$BURST_T1")% (each reply waits for the journal's flush: too few connections to cover that wait leave the CPU idle)"
  echo "disk written during the burst and its catch-up (journal and PostgreSQL): $DISK_A; PostgreSQL: $WAL_A"
  if [ -n "${WAITS:-}" ]; then
    wait "$SAMPLER" 2>/dev/null || true
    echo "what PostgreSQL's active backends were doing, sampled during the catch-up:"; cat "$WORK/waits"
  fi
  echo "the shipper's wall time per row during the catch-up, by stage, µs: $CATCHUP_STAGES"
  exit 0
fi

print_timeline() { # the sampler's file, half-second by half-second (TIMELINE=1)
  [ -n "${TIMELINE:-}" ] || return 0
  echo
  echo "the 1,000/s run right after a burst, by half-second: appends over 5 ms, the shipper's lag, dirty and under-writeback page cache, disk writes"
  python3 - "$WORK/timeline" "$CATCH_START" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 7 and l.split()[3] != "x"]
t0, prev = float(sys.argv[2]), None
print("|    s | appends > 5 ms | lag (records) | dirty MB | writeback MB | disk MB/s |")
print("|---|---|---|---|---|---|")
for r in rows:
    t, fast, every, lag, dirty, wb, disk = float(r[0]), int(r[1]), int(r[2]), r[3], r[4], r[5], float(r[6])
    if prev is None or t - prev[0] >= 0.5:
        if prev is not None:
            n = every - prev[2]
            print(f"| {t - t0:4.1f} | {n - (fast - prev[1])} of {n} | {lag} | {dirty} | {wb} | {(disk - prev[3]) / 1e6 / (t - prev[0]):.0f} |")
        prev = (t, fast, every, disk)
PY
}

if [ -z "${AFTER_ONLY:-}" ]; then
echo "== b. 1,000/s after a drain and a checkpoint" >&2
checkpoint
AP0=$(appends)
SG_1000=$(load "$SG_URL" sg-1000 1000)
AP1=$(appends)
fi

echo "== c. 1,000/s right after a burst" >&2
drain
SPARES_C=$(spares)
SG_BURST2=$(load "$SG_URL" sg-burst2 0)
LAG_AT_START=$(lag)
CATCH_START=$(now)
AP2=$(appends); DISK2=$(disk_written)
if [ -n "${TIMELINE:-}" ]; then # every 0.1 s: time, appends (fast, all), lag, dirty and writeback MB, disk bytes
  ( while :; do
      echo "$(now) $(appends) $(lag) $(dirty_mb) $(meminfo_mb Writeback) $(disk_written)"
      sleep 0.1
    done >"$WORK/timeline" ) &
  TIMELINE_PID=$!
fi
SG_AFTER=$(load "$SG_URL" sg-after 1000)
if [ -n "${TIMELINE:-}" ]; then kill "$TIMELINE_PID" 2>/dev/null || true; fi
AP3=$(appends); DISK_C=$(disk_rate "$DISK2" "$(disk_written)" "$SECS" "$(field "$SG_BURST2" ok)")
LAG_AT_END=$(lag)
drain
CATCHUP_SECS=$(since "$CATCH_START")
if [ -n "${AFTER_ONLY:-}" ]; then # two bursts close together, and 1,000/s right after the second
  echo "burst $(field "$SG_MAX" rps)/s against bare $(field "$BARE_MAX" rps)/s ($SPARES_A zero-filled journal segments ready when it began); its catch-up $DRAIN_SECS s"
  echo "second burst, begun once the first's records were shipped: $(field "$SG_BURST2" rps)/s ($SPARES_C segments ready when it began)"
  echo "1,000/s right after it (lag $LAG_AT_START -> $LAG_AT_END), ms: bare p99 $(field "$BARE_1000" p99_ms), svamlgate p99 $(field "$SG_AFTER" p99_ms) (p999 $(field "$SG_AFTER" p999_ms), max $(field "$SG_AFTER" max_ms)); appends over 5 ms $(slow_appends "$AP2" "$AP3"); drained ${CATCHUP_SECS} s after the run began; fallbacks $(field "$SG_AFTER" fallback), errors $(( $(field "$SG_BURST2" errors) + $(field "$SG_AFTER" errors) ))"
  print_timeline
  exit 0
fi

echo "== d. 300/s while postgres is SIGKILLed and restarted" >&2
PM=$(head -1 "$(pg_home)/pg/postmaster.pid")
DIRTY_D=$(dirty_mb)
( sleep "$(python3 -c "print($SECS/3)")"; kill -KILL "$PM" ) &
KILLER=$!
AP4=$(appends)
SG_KILL=$(load "$SG_URL" sg-kill 300)
wait "$KILLER" || true
AP5=$(appends)
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$SG/status")
HWM_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SG/status")
RESTART_START=$(now)
drain
RECOVERY_SECS=$(since "$RESTART_START")
CLUSTER=$(ready | python3 -c 'import json,sys; print(json.load(sys.stdin)["checks"]["embeddedCluster"])' 2>/dev/null || echo "?")

ROWS=$(pg_psql -c "SELECT count(*) FROM callbacks WHERE callid LIKE 'sg-%'")
ANSWERED=0
for r in "$WARM" "$SG_MAX" "$SG_1000" "$SG_BURST2" "$SG_AFTER" "$SG_KILL"; do
  ANSWERED=$(( ANSWERED + $(field "$r" ok) ))
done
ERRORS=0
for r in "$SG_MAX" "$SG_1000" "$SG_BURST2" "$SG_AFTER" "$SG_KILL"; do
  ERRORS=$(( ERRORS + $(field "$r" errors) ))
done

DEFERRALS=$(metrics | awk '/^svamlgate_ship_deferrals_total /{print $2}')
echo "== the bare handler's burst again, svamlgate stopped" >&2
bare_again

pct() { python3 -c "print(f'{100*$1/$2:.0f}%' if $2 else 'n/a')"; }
verdict() { python3 -c "print('met' if $1 else 'NOT MET')"; }
lat() { echo "p99 $(field "$1" p99_ms) (p999 $(field "$1" p999_ms), max $(field "$1" max_ms))"; }

echo
echo "svamlgate against a bare actix-web handler, same run, ${SECS} s per measurement, $(nproc) cores shared with the load generator"
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "Figure" "bare handler" "svamlgate" "target" ""
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "---" "---" "---" "---" "---"
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "burst: $CONNS connections, requests/s" \
  "$BARE_RPS" "$(field "$SG_MAX" rps) = $(pct "$(field "$SG_MAX" rps)" "$BARE_RPS")" ">= 30%" \
  "$(verdict "$(field "$SG_MAX" rps) * 100 >= 30 * $BARE_RPS")"
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "sustained: burst callbacks / (run + catch-up ${DRAIN_SECS} s)" \
  "$BARE_RPS" "$SUSTAINED/s = $(pct "$SUSTAINED" "$BARE_RPS")" ">= 25%" \
  "$(verdict "$SUSTAINED * 100 >= 25 * $BARE_RPS")"
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "1,000/s after a drain and a checkpoint, ms" \
  "$(lat "$BARE_1000")" "$(lat "$SG_1000")" "p99 <= 5" "$(verdict "$(field "$SG_1000" p99_ms) <= 5")"
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "1,000/s right after a ${SECS} s burst (lag $LAG_AT_START -> $LAG_AT_END), ms" \
  "$(lat "$BARE_1000")" "$(lat "$SG_AFTER")" "p99 <= 5" "$(verdict "$(field "$SG_AFTER" p99_ms) <= 5")"
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "300/s through a SIGKILL of postgres, ms" \
  "$(lat "$BARE_300")" "$(lat "$SG_KILL")" "p99 <= 5" "$(verdict "$(field "$SG_KILL" p99_ms) <= 5")"
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "rows in PostgreSQL / callbacks answered 200" \
  "-" "$ROWS / $ANSWERED" "equal" "$(verdict "$ROWS == $ANSWERED")"
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "PostgreSQL CPU per shipped row (burst + catch-up)" \
  "-" "$PG_US_PER_ROW us ($((SHIPPED1 - SHIPPED0)) rows)" "-" ""
printf '| %-58s | %-30s | %-38s | %-7s | %s\n' "svamlgate memory" \
  "-" "RSS $((RSS_KB / 1024)) MiB, peak $((HWM_KB / 1024)) MiB" "-" ""
echo
echo "fallbacks: burst $(field "$SG_MAX" fallback), 1,000/s $(field "$SG_1000" fallback), after burst $(field "$SG_AFTER" fallback), SIGKILL $(field "$SG_KILL" fallback); errors (no answer or not 200): bare $(( $(field "$BARE_MAX" errors) + $(field "$BARE_MAX2" errors) + $(field "$BARE_1000" errors) + $(field "$BARE_300" errors) )), svamlgate $ERRORS"
echo "zero-filled journal segments ready: $SPARES_A when the burst began (after a quiet moment), $SPARES_C when the second burst began"
echo "second burst: $(field "$SG_BURST2" rps) requests/s; the journal was drained ${CATCHUP_SECS} s after the 1,000/s run began (looked for once the run ended: an upper bound; TIMELINE=1 shows when the lag fell)"
echo "after the SIGKILL: drained ${RECOVERY_SECS} s after the 300/s run ended; embedded cluster: $CLUSTER; restarts seen in the log: $(grep -c 'starting it again' "$WORK/svamlgate.log" || true)"
echo "journal flushes over 100 ms logged by svamlgate: $(grep -c 'the disk took long' "$WORK/svamlgate.log" || true) warnings (at most one per 10 s; each counts the slow flushes since the last)"
echo "journal appends (record handed over to durable) over 5 ms, which a reply waits for: 1,000/s after a drain $(slow_appends "$AP0" "$AP1"); right after a burst $(slow_appends "$AP2" "$AP3"); through the SIGKILL $(slow_appends "$AP4" "$AP5")"
host_memory
echo "machine during the run: load average $(cut -d' ' -f1-3 /proc/loadavg); CPU pressure $(awk '/some/{print $2}' /proc/pressure/cpu 2>/dev/null); I/O pressure $(awk '/some/{print $2}' /proc/pressure/io 2>/dev/null)"
echo "bare handler's burst: $(field "$BARE_MAX" rps)/s before svamlgate's runs, $(field "$BARE_MAX2" rps)/s after them; the ratios use the higher"
echo "CPU during the burst's catch-up: $CATCHUP_CPU"
echo "disk written (journal and PostgreSQL together) during the burst and its catch-up: $DISK_A (PostgreSQL: $WAL_A); during the 1,000/s run right after a burst: $DISK_C of the second burst's; left dirty in the page cache when the SIGKILL run began: $DIRTY_D MB"
echo "the shipper's wall time per row during that catch-up, by stage, µs: $CATCHUP_STAGES"
echo "shipper deferrals while the reply path was saturated: ${DEFERRALS:-0}"
print_timeline
