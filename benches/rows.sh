#!/usr/bin/env bash
# What one shipped callback row costs PostgreSQL (CPU, and WAL bytes) on the shipper's fast path
# (binary COPY straight into callbacks), with each distinct reply and gate report stored once, no
# index on the documents' ids (0019) and the reference the row's id (0020) against the report in
# every row with the sweep's index callbacks_reply and a unique reference of its own (0015 to
# 0018), and what each index of `callbacks`, the console's counts (as the
# shipper adds them since 0018, and by the trigger of 0012 before) and the call_state rows add to
# it.
#
#   benches/rows.sh                      # 40,000 rows per variant, three rounds
#   ROWS=100000 REPEAT=5 benches/rows.sh
#
# Starts a throwaway cluster (as the postgres user when run as root), applies migrations/*.sql,
# then ships generated ICE rows of an IVR flow (each with the same runMenu reply and the same clean
# report) the way the shipper does, once with the schema as the migrations leave it and once per
# variant below, in REPEAT interleaved rounds (the median is printed). It reads the CPU time of
# every process of the cluster (the backends, the WAL writer, the checkpointer, ...) from /proc
# before and after, and prints microseconds of PostgreSQL CPU per row (CPU time, not wall time:
# the figure holds on a machine busy with other work), and the WAL bytes per row
# (pg_current_wal_lsn before and after the batches; full-page writes included, the measurement
# starting right after a checkpoint). The staging path (a batch shipped again), the reply in every
# row (before 0015), the time indexes in descending order (before 0017) and the shippers before
# binary COPY were measured by earlier versions of this script (docs/benchmarks.md). Needs
# initdb/postgres/psql and python3; only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-40000}
BIN=$(dirname "$(readlink -f "$(command -v postgres)")")
WORK=$(mktemp -d /tmp/svamlgate-rows-XXXXXX)
chmod 755 "$WORK"
RUN=()
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; RUN=(runuser -u postgres --); fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  "${RUN[@]}" "$BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"${RUN[@]}" "$BIN/initdb" -D "$WORK/pg" -U postgres -A trust >/dev/null
"${RUN[@]}" "$BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=" start >/dev/null
PSQL=(psql -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
# Two databases: "now" with every migration, "before" without 0019 and 0020 (the report stored in
# every row, the index callbacks_reply, a reference of its own in every row with its unique index).
"${PSQL[@]}" -d postgres -c "CREATE DATABASE now" -c "CREATE DATABASE before"
for m in migrations/*.sql; do
  "${PSQL[@]}" -d now -f "$m" >/dev/null
  case "$m" in migrations/0019_*|migrations/0020_*) ;; *) "${PSQL[@]}" -d before -f "$m" >/dev/null ;; esac
done

# The batches, as the shipper's fast path sends them (src/recording/ship.rs): binary COPY
# straight into callbacks (body_json, called, caller sent by svamlgate), each batch a file of its
# own read by psql's \copy, in one transaction per batch of 500. Generated once per style:
#   now      the reply as replies.id (callbacks.reply_id) and the report as reports.id
#            (callbacks.validation_id), the batch's distinct reply and report stored first (INSERT
#            ... SELECT FROM unnest ... ON CONFLICT DO UPDATE, a new version of each), as since 0019
#   before   the report as jsonb in every row, the distinct reply inserted first (ON CONFLICT DO
#            NOTHING): the shipper from 0015 to 0018
#   dnew     now, plus each call's state COPYed straight into call_state (the fast path's way for
#            calls whose ICE is in the batch: the IVR route's)
#   trig     now without the console's counts (console_add_counts, one call per batch since
#            0018): for the variant with the trigger of 0012 put back, which counted instead
# Every style but trig adds the batch's console counts as the shipper does since 0018.
for variant in now before dnew trig; do
python3 - "$ROWS" "$WORK/batches-$variant.sql" "$variant" <<'PY'
import sys, uuid, json, datetime, hashlib, struct
rows, out, variant = int(sys.argv[1]), sys.argv[2], sys.argv[3]
inline = variant == "before"
# The column types of the fast path's COPY into callbacks, in its order.
TYPES = ("uuid text ts text bool text text ts bytea bool text text jsonb text text text text uuid int2 uuid text text "
         + ("jsonb" if inline else "uuid") + " int8 int8 int4 text int8 text").split()
def pg_bin(ty, v):
    if v is None: return struct.pack(">i", -1)
    if ty == "uuid": b = uuid.UUID(v).bytes
    elif ty == "ts":
        d = v - datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
        b = struct.pack(">q", (d.days * 86400 + d.seconds) * 1000000 + d.microseconds)
    elif ty == "bool": b = b"\x01" if v else b"\x00"
    elif ty == "bytea": b = v
    elif ty == "jsonb": b = b"\x01" + v.encode()
    elif ty == "int2": b = struct.pack(">h", int(v))
    elif ty == "int4": b = struct.pack(">i", int(v))
    elif ty == "int8": b = struct.pack(">q", int(v))
    else: b = v.encode()
    return struct.pack(">i", len(b)) + b
cols = ("id, reference, received_at, event_type, event_known, callid, application_key, event_timestamp, "
        "raw_body, body_json, called, caller, parse_warnings, signature, dedup_key, remote_addr, path, duplicate_of, "
        "http_status, reply_id, reply_source, fallback_reason, " + ("validation" if inline else "validation_id") + ", "
        "latency_us, flow_id, flow_version, flow_node, route_id, gate_verdict")
reply = json.dumps({"instructions": [], "action": {"name": "runMenu", "barge": True, "locale": "en-US",
  "mainMenu": "main", "menus": [{"id": "main", "mainPrompt": "#tts[Welcome to Example Corp. For sales, press 1. For support, press 2. To enter your PIN, press 3.]",
  "repeatPrompt": "#tts[Sorry, I did not get that. For sales, press 1. For support, press 2. To enter your PIN, press 3.]",
  "repeats": 2, "timeoutMills": 5000, "options": [{"dtmf": "1", "action": "return(sales)"},
  {"dtmf": "2", "action": "return(support)"}, {"dtmf": "3", "action": "return(pin)"}]}]}}, separators=(",", ":"))
reply_id = str(uuid.UUID(bytes=hashlib.sha256(reply.encode()).digest()[:16]))
validation = json.dumps({"valid": True, "target": "ice", "mode": "normal", "bundleVersion": "1.1.0", "errorCount": 0,
  "warningCount": 0, "violations": []}, separators=(",", ":"))
validation_id = str(uuid.UUID(bytes=hashlib.sha256(validation.encode()).digest()[:16]))
context = json.dumps({"digits": "", "attempts": 0, "vars": {"lang": "en"}}, separators=(",", ":"))
t0 = datetime.datetime.now(datetime.timezone.utc)
def sql(s): return "'" + s.replace("'", "''") + "'"
def esc(s): return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
with open(out, "w") as f:
    for b in range(0, rows, 500):
        bfile = open(f"{out}.{b}.bin", "wb")
        bfile.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
        f.write("BEGIN;\nSET LOCAL client_min_messages = warning;\n")
        if inline:
            f.write(f"INSERT INTO replies (id, reply) SELECT id, reply::jsonb FROM unnest(ARRAY[{sql(reply_id)}]::uuid[], "
                    f"ARRAY[{sql(reply)}]::text[]) AS r (id, reply) ON CONFLICT (id) DO NOTHING;\n")
        else:
            for table, column, i, d in (("replies", "reply", reply_id, reply), ("reports", "report", validation_id, validation)):
                f.write(f"INSERT INTO {table} (id, {column}) SELECT id, doc::jsonb FROM unnest(ARRAY[{sql(i)}]::uuid[], "
                        f"ARRAY[{sql(d)}]::text[]) AS d (id, doc) ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id;\n")
        f.write(f"\\copy callbacks ({cols}) FROM '{out}.{b}.bin' WITH (FORMAT binary)\n")
        states = []
        for i in range(b, min(b + 500, rows)):
            at = t0 + datetime.timedelta(microseconds=100 * i)
            callid = f"rows-{i}"
            body = ('{"event":"ice","callid":"%s","timestamp":"%s","version":1,"cli":"46708168731",'
                    '"to":{"type":"number","endpoint":"+15550100"},"domain":"pstn","originationType":"PSTN",'
                    '"applicationKey":"bench-key"}' % (callid, at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"))
            row_id = str(uuid.uuid1())
            # Since 0020 a callback's reference is its id's text; before, a UUID of its own.
            row = [row_id, str(uuid.uuid1()) if inline else row_id, at, "ice", True, callid, "bench-key", at, body.encode(),
                   True, "+15550100", "46708168731", None, "verified", hashlib.sha256(body.encode()).hexdigest(),
                   "127.0.0.1:5000", "/sinch/callback", None, 200, reply_id, "flow", None,
                   validation if inline else validation_id, 850, 1, 1, "welcome", 1, "passed"]
            bfile.write(struct.pack(">h", len(row)) + b"".join(pg_bin(t, v) for t, v in zip(TYPES, row)))
            states.append("\t".join([callid, "1", "1", "1", "welcome", esc(context), at.strftime("%Y-%m-%d %H:%M:%S.%f+00")]))
        bfile.write(struct.pack(">h", -1))
        bfile.close()
        if variant != "trig":
            groups = {}
            for i in range(b, min(b + 500, rows)):
                at = t0 + datetime.timedelta(microseconds=100 * i)
                minute = at.replace(second=0, microsecond=0).strftime("%Y-%m-%d %H:%M:%S+00")
                groups[minute] = groups.get(minute, 0) + 1
            arr = lambda xs, ty: "ARRAY[" + ",".join(xs) + "]::" + ty + "[]"
            n = len(groups)
            f.write("SELECT console_add_counts(" + ", ".join([
                arr([sql(m) for m in groups], "timestamptz"), arr([sql("ice")] * n, "text"),
                arr([sql("flow")] * n, "text"), arr([sql("")] * n, "text"), arr([sql("passed")] * n, "text"),
                arr([str(c) for c in groups.values()], "bigint"),
                "'{}'::timestamptz[]", "'{}'::text[]", "'{}'::text[]", "'{}'::text[]", "'{}'::text[]",
                "'{}'::bigint[]"]) + ");\n")
        if variant == "dnew":
            f.write("COPY call_state (callid, route_id, flow_id, flow_version, node, context, updated_at) FROM STDIN;\n"
                    + "\n".join(states) + "\n\\.\n")
        f.write("COMMIT;\n")
PY
done

# The console's counts as migration 0012 kept them: a trigger per statement over the rows inserted
# (its transition table), dropped by 0018.
sed -n '/^CREATE FUNCTION console_count_callbacks/,/FOR EACH STATEMENT EXECUTE FUNCTION console_count_callbacks();/p' \
  migrations/0012_console.sql >"$WORK/trigger.sql"

cluster_cpu() { # clock ticks of every process of the cluster, the exited backends included
  local pm total pid
  pm=$(head -1 "$WORK/pg/postmaster.pid")
  # utime + stime, and cutime + cstime: the backends that exited (the postmaster reaps them).
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
  for pid in $(pgrep -P "$pm"); do
    [ -r "/proc/$pid/stat" ] || continue
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
  done
  echo "$total"
}
TICK=$(getconf CLK_TCK)

measure() { # database, SQL applied first, batches (a style above), SQL applied after; prints us/row and WAL bytes/row
  local db=$1 before after lsn0 lsn1
  "${PSQL[@]}" -d "$db" -c "SET client_min_messages = warning" -c "TRUNCATE callbacks, call_state CASCADE" -c "CHECKPOINT" >/dev/null
  if [ -n "$2" ]; then "${PSQL[@]}" -d "$db" -c "$2" >/dev/null; fi
  lsn0=$("${PSQL[@]}" -d "$db" -c "SELECT pg_current_wal_lsn()")
  before=$(cluster_cpu)
  "${PSQL[@]}" -d "$db" -f "$WORK/batches-$3.sql" >/dev/null
  lsn1=$("${PSQL[@]}" -d "$db" -c "SELECT pg_current_wal_lsn()")
  "${PSQL[@]}" -d "$db" -c "CHECKPOINT" >/dev/null
  after=$(cluster_cpu)
  # The tables' and their indexes' size (what the rows took of new pages, as WAL does).
  rel=$("${PSQL[@]}" -d "$db" -c "SELECT pg_total_relation_size('callbacks') + pg_total_relation_size('call_state')")
  if [ "$db" = now ] && [ "$3" = dnew ] && [ -z "$2" ]; then # each relation's share, once per round
    "${PSQL[@]}" -d "$db" -F ' ' -c "SELECT c.relname, round(pg_relation_size(c.oid)::numeric / $ROWS) FROM pg_class c
      WHERE c.relname IN ('callbacks', 'call_state') OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ('callbacks'::regclass, 'call_state'::regclass))
      ORDER BY 2 DESC" >"$WORK/breakdown"
  fi
  if [ -n "$4" ]; then "${PSQL[@]}" -d "$db" -c "$4" >/dev/null; fi
  wal=$("${PSQL[@]}" -d "$db" -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
  python3 -c "print(f'{($after - $before) * 1e6 / $TICK / $ROWS:.1f}/{$wal / $ROWS:.0f}/{$rel / $ROWS:.0f}')"
}

# label | database | SQL before | batches | SQL after
VARIANTS=(
  "the report in every row, callbacks_reply (0015-0018)|before||before|"
  "each distinct report once, no index, reference = id (now)|now||now|"
  "  plus callbacks_reply (the sweep's index before 0019)|now|CREATE INDEX callbacks_reply ON callbacks (reply_id)|now|DROP INDEX callbacks_reply"
  "  without callbacks_received|now|DROP INDEX callbacks_received|now|CREATE INDEX callbacks_received ON callbacks (received_at)"
  "  without callbacks_callid_received|now|DROP INDEX callbacks_callid_received|now|CREATE INDEX callbacks_callid_received ON callbacks (callid, received_at)"
  "  plus the unique reference (before 0020)|now|DROP INDEX callbacks_reference_own; ALTER TABLE callbacks ADD CONSTRAINT callbacks_reference_key UNIQUE (reference)|now|ALTER TABLE callbacks DROP CONSTRAINT callbacks_reference_key; CREATE UNIQUE INDEX callbacks_reference_own ON callbacks (reference) WHERE reference <> id::text"
  "  without callbacks_ice_called and _cli|now|DROP INDEX callbacks_ice_called; DROP INDEX callbacks_ice_cli|now|CREATE INDEX callbacks_ice_called ON callbacks (called, received_at) WHERE event_type = 'ice'; CREATE INDEX callbacks_ice_cli ON callbacks (caller, received_at) WHERE event_type = 'ice'"
  "  without callbacks_unredacted|now|DROP INDEX callbacks_unredacted|now|CREATE INDEX callbacks_unredacted ON callbacks (received_at) WHERE redacted_at IS NULL"
  "  without the console's counts|now||trig|"
  "  the console's counts by the trigger of 0012 instead (before 0018)|now|\\i $WORK/trigger.sql|trig|DROP TRIGGER callbacks_console_counts ON callbacks; DROP FUNCTION console_count_callbacks()"
  "  plus call_state COPYed straight in (new calls)|now||dnew|"
)
REPEAT=${REPEAT:-3}
measure now "" now "" >/dev/null # warms up (catalogs, the page cache); not counted
measure before "" before "" >/dev/null
declare -A FIG
for round in $(seq 1 "$REPEAT"); do
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r label db before batches after <<<"$v"
    FIG[$label]+="$(measure "$db" "$before" "$batches" "$after") "
  done
done
echo "PostgreSQL CPU, WAL and table size (callbacks and call_state with their indexes) per shipped callback row: median of $REPEAT rounds of $ROWS rows (batches of 500, checkpoint included in CPU)"
for v in "${VARIANTS[@]}"; do
  IFS='|' read -r label _ <<<"$v"
  python3 -c "import statistics,sys; p=[x.split('/') for x in sys.argv[2].split()]; f=[float(x[0]) for x in p]; w=[float(x[1]) for x in p]; r=[float(x[2]) for x in p]; print(f'%-55s %6.1f us/row %6.0f WAL bytes/row %6.0f table bytes/row   (%s)' % (sys.argv[1], statistics.median(f), statistics.median(w), statistics.median(r), ' '.join(x[0] for x in p)))" "$label" "${FIG[$label]:-}"
done
echo "bytes per row of each relation (the last round of \"plus call_state COPYed straight in\"; TOAST and free space maps aside):"
sed 's/^/  /' "$WORK/breakdown"
