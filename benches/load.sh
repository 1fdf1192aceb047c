#!/usr/bin/env bash
# The whole reply path, side by side with its ceiling, in one run on one machine.
#
#   benches/load.sh            # 10 s per measurement
#   SECS=20 benches/load.sh    # longer
#
# Builds (release) svamlgate, a bare actix-web handler from the same dependency versions
# (examples/bare.rs) and a load generator that signs every request as Sinch does
# (examples/loadgen.rs). Then, on this machine, with the load generator sharing its cores:
#   1. the bare handler: requests/s with 32 connections; p50/p99 at a fixed 1,000 requests/s;
#   2. svamlgate as shipped (durable journal, embedded PostgreSQL, an IVR flow route for the
#      called number): the same two figures;
#   3. svamlgate at 1,000 requests/s while its PostgreSQL is stopped (SIGSTOP of the postmaster and
#      its backends: it neither answers nor refuses), then resumed;
#   4. svamlgate's resident memory, and the rows in PostgreSQL against the callbacks answered once
#      the shipper has drained the journal;
#   5. how long the shipper needed to catch up after the 32-connection run (it holds back while
#      callers queue, for at most SVAMLGATE_SHIP_DEFER_MAX_SECS), and the sustained figure: the
#      callbacks of that run over the run plus the catch-up.
# Each fixed-rate run starts once the shipper has drained what the run before it left in the
# journal, PostgreSQL has checkpointed it (CHECKPOINT) and the page cache is written back (`sync`):
# otherwise the writes of the rows PostgreSQL took a moment ago (its checkpoint after 200,000 rows,
# the kernel's writeback) land in the middle of the run and delay the journal's fdatasync, which
# measures the previous run, not this one. Only 127.0.0.1 is contacted; every run is bounded in time. Targets (2 cores, load generator on
# the same cores): >= 25% of the bare handler's throughput, p99 <= 5 ms at 1,000/s with the flow
# route, p99 <= 10 ms at 1,000/s while PostgreSQL is stopped, rows = callbacks answered.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-10}
KEY=bench-key
SECRET=YmVuY2gtc2VjcmV0
TOKEN=bench-admin

echo "== building (release)" >&2
cargo build --release --locked --bin svamlgate --example bare --example loadgen >&2
BIN=target/release

WORK=$(mktemp -d /tmp/svamlgate-bench-XXXXXX)
chmod 755 "$WORK"
PIDS=()
STOPPED=()
cleanup() {
  for p in "${STOPPED[@]}"; do kill -CONT "$p" 2>/dev/null || true; done
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
  "$BIN/examples/loadgen" --url "$1" --key "$KEY" --secret "$SECRET" --connections 32 \
    --seconds "${4:-$SECS}" --rate "$3" --prefix "$2" --called +15550100
}
drain() { # waits until the shipper has moved every journal record into PostgreSQL
  for _ in $(seq 1 1200); do
    LAG=$(curl -sf "$BASE/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["shipping"]["lagRecords"])' || echo x)
    [ "$LAG" = 0 ] && return 0
    sleep 0.5
  done
  echo "the journal did not drain" >&2
}
checkpoint() { # PostgreSQL writes out what the run before left in its buffers, then the kernel its cache
  PGPASSWORD=$(cat "$WORK/data/pg-password") psql -h 127.0.0.1 -p "$(cat "$WORK/data/pg-port")" \
    -U svamlgate -d postgres -qAtc "CHECKPOINT" >/dev/null
  sync
}
field() { # line name
  sed -n "s/.*$2=\([^ ]*\).*/\1/p" <<<"$1"
}

echo "== bare actix-web handler" >&2
BP=$(free_port)
"$BIN/examples/bare" "127.0.0.1:$BP" & PIDS+=($!)
wait_port "$BP"
BARE_URL="http://127.0.0.1:$BP/sinch/callback"
load "$BARE_URL" warm 0 3 >/dev/null
BARE_MAX=$(load "$BARE_URL" bare-max 0)
BARE_FIXED=$(load "$BARE_URL" bare-fixed 1000)
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

echo "== svamlgate (journal + embedded PostgreSQL + IVR flow route)" >&2
SP=$(free_port)
SVAMLGATE_DATA_DIR="$WORK/data" SVAMLGATE_LISTEN="127.0.0.1:$SP" \
SINCH_APPLICATION_KEY="$KEY" SINCH_APPLICATION_SECRET="$SECRET" SVAMLGATE_ADMIN_TOKEN="$TOKEN" \
RUST_LOG=warn "$BIN/svamlgate" serve >"$WORK/svamlgate.log" 2>&1 & SG=$!
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
WARM=$(load "$SG_URL" sg-warm 0 3)
drain
SG_MAX=$(load "$SG_URL" sg-max 0)
# Each fixed-rate run starts from a drained journal: it measures 1,000/s, not the backlog of the
# run before it. The time the shipper needs to catch up after the 32-connection run gives the
# sustained figure: callbacks answered over the run plus the drain (PostgreSQL's work included).
echo "== waiting for the shipper to drain the journal" >&2
DRAIN_START=$(date +%s.%N)
drain
DRAIN_SECS=$(python3 -c "import time; print(f'{time.time() - $DRAIN_START:.1f}')")
checkpoint
SG_FIXED=$(load "$SG_URL" sg-fixed 1000)
drain
checkpoint

echo "== svamlgate while PostgreSQL is stopped" >&2
PM=$(head -1 "$WORK/data/pg/postmaster.pid")
STOPPED=("$PM" $(pgrep -P "$PM" || true))
kill -STOP "${STOPPED[@]}"
SG_DOWN=$(load "$SG_URL" sg-down 1000)
kill -CONT "${STOPPED[@]}"
STOPPED=()
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$SG/status")
HWM_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SG/status")

echo "== waiting for the shipper to drain the journal" >&2
drain
ROWS=$(PGPASSWORD=$(cat "$WORK/data/pg-password") psql -h 127.0.0.1 -p "$(cat "$WORK/data/pg-port")" \
  -U svamlgate -d postgres -Atc "SELECT count(*) FROM callbacks WHERE callid LIKE 'sg-%'")
ANSWERED=$(( $(field "$WARM" ok) + $(field "$SG_MAX" ok) + $(field "$SG_FIXED" ok) + $(field "$SG_DOWN" ok) ))

ratio() { python3 -c "print(f'{100*$1/$2:.0f}%' if $2 else 'n/a')"; }
printf '\n%-44s %12s %10s %10s %10s\n' "run (${SECS}s each, 2 cores shared with the load)" "requests/s" "p50 ms" "p99 ms" "fallbacks"
printf '%-44s %12s %10s %10s %10s\n' "bare handler, 32 connections" "$(field "$BARE_MAX" rps)" "$(field "$BARE_MAX" p50_ms)" "$(field "$BARE_MAX" p99_ms)" "-"
printf '%-44s %12s %10s %10s %10s\n' "svamlgate, 32 connections" "$(field "$SG_MAX" rps)" "$(field "$SG_MAX" p50_ms)" "$(field "$SG_MAX" p99_ms)" "$(field "$SG_MAX" fallback)"
printf '%-44s %12s %10s %10s %10s\n' "bare handler, fixed 1,000/s" "$(field "$BARE_FIXED" rps)" "$(field "$BARE_FIXED" p50_ms)" "$(field "$BARE_FIXED" p99_ms)" "-"
printf '%-44s %12s %10s %10s %10s\n' "svamlgate, fixed 1,000/s" "$(field "$SG_FIXED" rps)" "$(field "$SG_FIXED" p50_ms)" "$(field "$SG_FIXED" p99_ms)" "$(field "$SG_FIXED" fallback)"
printf '%-44s %12s %10s %10s %10s\n' "svamlgate, fixed 1,000/s, PostgreSQL stopped" "$(field "$SG_DOWN" rps)" "$(field "$SG_DOWN" p50_ms)" "$(field "$SG_DOWN" p99_ms)" "$(field "$SG_DOWN" fallback)"
echo
SUSTAINED=$(python3 -c "print(round($(field "$SG_MAX" ok) / ($SECS + $DRAIN_SECS)))")
echo "throughput, svamlgate / bare:     $(ratio "$(field "$SG_MAX" rps)" "$(field "$BARE_MAX" rps)")   (target >= 25%)"
echo "shipper caught up after the run:  ${DRAIN_SECS} s; sustained (run + drain): ${SUSTAINED}/s = $(ratio "$SUSTAINED" "$(field "$BARE_MAX" rps)") of bare"
echo "errors (no answer or not 200):    bare $(( $(field "$BARE_MAX" errors) + $(field "$BARE_FIXED" errors) )), svamlgate $(( $(field "$SG_MAX" errors) + $(field "$SG_FIXED" errors) + $(field "$SG_DOWN" errors) ))"
echo "svamlgate memory:                 RSS $((RSS_KB / 1024)) MiB, peak $((HWM_KB / 1024)) MiB"
echo "callbacks answered 200:           $ANSWERED"
echo "rows in PostgreSQL after drain:   $ROWS   ($([ "$ROWS" = "$ANSWERED" ] && echo equal || echo DIFFERENT))"
