#!/usr/bin/env bash
# What one shipped callback row costs PostgreSQL (CPU, and WAL bytes), and what each index of
# `callbacks`, the body stored twice, `reply` as jsonb, the console's trigger and the call_state
# upsert add to it; the shipper's staging path and its fast path (COPY straight into the tables).
#
#   benches/rows.sh                      # 40,000 rows per variant, three rounds
#   ROWS=100000 REPEAT=5 benches/rows.sh
#
# Starts a throwaway cluster (as the postgres user when run as root), applies migrations/*.sql,
# then ships generated callback rows the way the shipper does (batches of 500: COPY into a staging
# table, one INSERT ... SELECT ... ON CONFLICT DO NOTHING, commit; or COPY straight into callbacks,
# the fast path), once with the schema as the
# migrations leave it and once per variant below, in REPEAT interleaved rounds (the median is
# printed). It reads the CPU time of every process of the cluster (the backends, the WAL writer, the
# checkpointer, ...) from /proc before and after, and prints microseconds of PostgreSQL CPU per row
# (CPU time, not wall time: the figure holds on a machine busy with other work), and the WAL bytes
# per row (pg_current_wal_lsn before and after the batches; full-page writes included, the
# measurement starting right after a checkpoint). Needs initdb/postgres/psql and python3; only 127.0.0.1 is used.
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
# Two databases: "now" with every migration, "before" without 0013 (the body stored twice).
"${PSQL[@]}" -d postgres -c "CREATE DATABASE now" -c "CREATE DATABASE before"
for m in migrations/*.sql; do
  "${PSQL[@]}" -d now -f "$m" >/dev/null
  case "$m" in migrations/0013_*) ;; *) "${PSQL[@]}" -d before -f "$m" >/dev/null ;; esac
done

# The batches, as the shipper sends them (src/recording/ship.rs), generated once per style:
#   before   the shipper before 0013: body as jsonb in COPY and stored
#   now      body parsed as jsonb in the staging table only; body_json, called, caller derived by the INSERT
#   noparse  body_json, called and caller sent by svamlgate, no jsonb parse in PostgreSQL at all
#   state    now, plus one call_state upsert per callback (the IVR route's)
#   insert   the shipper before COPY: one multi-row INSERT per batch (schema before 0013)
#   direct   the shipper's fast path: COPY straight into callbacks (body_json, called, caller sent by
#            svamlgate), no staging table, no INSERT ... SELECT, no ON CONFLICT
#   dstate   direct, plus one call_state upsert per callback (the IVR route's)
#   dnew     direct, plus each call's state COPYed straight into call_state (the fast path's way for
#            calls whose ICE is in the batch)
#   binary   direct in COPY's binary format (what the shipper sends since session 9): each batch a
#            file of its own, read by psql's \copy
for variant in before now noparse state insert direct dstate dnew binary; do
python3 - "$ROWS" "$WORK/batches-$variant.sql" "$variant" <<'PY'
import sys, uuid, json, datetime, hashlib, struct
rows, out, variant = int(sys.argv[1]), sys.argv[2], sys.argv[3]
binary = variant == "binary"
if binary:
    variant = "direct"
# Binary COPY: the column types of the fast path's COPY into callbacks, in its order.
TYPES = ("uuid text ts text bool text text ts bytea bool text text jsonb text text text text uuid int2 "
         "jsonb text text jsonb int8 int8 int4 text int8 text").split()
def pg_bin(ty, v):
    if v == "\\N": return struct.pack(">i", -1)
    v = v.replace("\\t", "\t").replace("\\n", "\n").replace("\\\\", "\\")
    if ty == "uuid": b = uuid.UUID(v).bytes
    elif ty == "ts":
        t = datetime.datetime.strptime(v[:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
        d = t - datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
        b = struct.pack(">q", (d.days * 86400 + d.seconds) * 1000000 + d.microseconds)
    elif ty == "bool": b = b"\x01" if v == "t" else b"\x00"
    elif ty == "bytea": b = bytes.fromhex(v[2:])
    elif ty == "jsonb": b = b"\x01" + v.encode()
    elif ty == "int2": b = struct.pack(">h", int(v))
    elif ty == "int4": b = struct.pack(">i", int(v))
    elif ty == "int8": b = struct.pack(">q", int(v))
    else: b = v.encode()
    return struct.pack(">i", len(b)) + b
common = ("id, reference, received_at, event_type, event_known, callid, application_key, event_timestamp, "
          "raw_body, {body}parse_warnings, signature, dedup_key, remote_addr, path, duplicate_of, http_status, "
          "reply, reply_source, fallback_reason, validation, latency_us, flow_id, flow_version, flow_node, "
          "route_id, gate_verdict")
old = variant in ("before", "insert")
direct = variant in ("direct", "dstate", "dnew")
flags = variant in ("noparse", "direct", "dstate", "dnew")
cols = common.format(body="body_json, called, caller, " if flags else "body, ")
target = common.format(body="body, " if old else "body_json, called, caller, ")
select = cols if old or flags else common.format(
    body="body IS NOT NULL, CASE WHEN event_type = 'ice' THEN body->'to'->>'endpoint' END, "
         "CASE WHEN event_type = 'ice' THEN body->>'cli' END, ")
staging = "(LIKE callbacks)" if variant in ("before", "insert", "noparse") else "(LIKE callbacks INCLUDING DEFAULTS, body jsonb)"
reply = json.dumps({"instructions": [], "action": {"name": "runMenu", "barge": True, "locale": "en-US",
  "mainMenu": "main", "menus": [{"id": "main", "mainPrompt": "#tts[Welcome to Example Corp. For sales, press 1. For support, press 2. To enter your PIN, press 3.]",
  "repeatPrompt": "#tts[Sorry, I did not get that. For sales, press 1. For support, press 2. To enter your PIN, press 3.]",
  "repeats": 2, "timeoutMills": 5000, "options": [{"dtmf": "1", "action": "return(sales)"},
  {"dtmf": "2", "action": "return(support)"}, {"dtmf": "3", "action": "return(pin)"}]}]}}, separators=(",", ":"))
validation = json.dumps({"valid": True, "event": "ice", "violations": [], "warnings": []}, separators=(",", ":"))
context = json.dumps({"digits": "", "attempts": 0, "vars": {"lang": "en"}}, separators=(",", ":"))
t0 = datetime.datetime.now(datetime.timezone.utc)
def esc(s): return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
with open(out, "w") as f:
    for b in range(0, rows, 500):
        if binary:
            bfile = open(f"{out}.{b}.bin", "wb")
            bfile.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            f.write(f"BEGIN;\nSET LOCAL client_min_messages = warning;\n\\copy callbacks ({cols}) FROM '{out}.{b}.bin' WITH (FORMAT binary)\n")
        elif direct:
            f.write(f"BEGIN;\nSET LOCAL client_min_messages = warning;\nCOPY callbacks ({cols}) FROM STDIN;\n")
        else:
            f.write("BEGIN;\nSET LOCAL client_min_messages = warning;\n"
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS ship_callbacks {staging} ON COMMIT DELETE ROWS;\n"
                    f"COPY ship_callbacks ({cols}) FROM STDIN;\n")
        states = []
        for i in range(b, min(b + 500, rows)):
            at = (t0 + datetime.timedelta(microseconds=100 * i)).strftime("%Y-%m-%d %H:%M:%S.%f+00")
            callid = f"rows-{i}"
            body = ('{"event":"ice","callid":"%s","timestamp":"%sZ","version":1,"cli":"46708168731",'
                    '"to":{"type":"number","endpoint":"+15550100"},"domain":"pstn","originationType":"PSTN",'
                    '"applicationKey":"bench-key"}' % (callid, at[:23].replace(" ", "T")))
            fields = ["t", "+15550100", "46708168731"] if flags else [esc(body)]
            row = [str(uuid.uuid1()), str(uuid.uuid1()), at, "ice", "t", callid, "bench-key", at,
                   "\\\\x" + body.encode().hex()] + fields + ["\\N", "verified",
                   hashlib.sha256(body.encode()).hexdigest(), "127.0.0.1:5000", "/sinch/callback", "\\N",
                   "200", esc(reply), "flow", "\\N", esc(validation), "850", "1", "1", "welcome", "1", "passed"]
            if binary:
                bfile.write(struct.pack(">h", len(row)) + b"".join(pg_bin(t, v) for t, v in zip(TYPES, row)))
            else:
                f.write("\t".join(row) + "\n")
            states.append("\t".join([callid, "1", "1", "1", "welcome", esc(context), at]))
        if binary:
            bfile.write(struct.pack(">h", -1))
            bfile.close()
        else:
            f.write("\\.\n")
        if not direct:
            f.write(f"INSERT INTO callbacks ({target}) SELECT {select} FROM ship_callbacks ON CONFLICT (id) DO NOTHING;\n")
        if variant == "dnew":
            f.write("COPY call_state (callid, route_id, flow_id, flow_version, node, context, updated_at) FROM STDIN;\n"
                    + "\n".join(states) + "\n\\.\n")
        if variant in ("state", "dstate"):
            f.write("CREATE TEMPORARY TABLE IF NOT EXISTS ship_call_state (LIKE call_state) ON COMMIT DELETE ROWS;\n"
                    "COPY ship_call_state (callid, route_id, flow_id, flow_version, node, context, updated_at) FROM STDIN;\n"
                    + "\n".join(states) + "\n\\.\n"
                    "INSERT INTO call_state (callid, route_id, flow_id, flow_version, node, context, updated_at) "
                    "SELECT callid, route_id, flow_id, flow_version, node, context, updated_at FROM ship_call_state "
                    "ON CONFLICT (callid) DO UPDATE SET route_id = EXCLUDED.route_id, flow_id = EXCLUDED.flow_id, "
                    "flow_version = EXCLUDED.flow_version, node = EXCLUDED.node, context = EXCLUDED.context, "
                    "updated_at = EXCLUDED.updated_at WHERE call_state.updated_at <= EXCLUDED.updated_at;\n")
        f.write("COMMIT;\n")
if variant != "insert":
    sys.exit(0)
# The shipper before COPY: one multi-row INSERT per batch, parsed and planned every time.
def lit(v):
    if v == "\\N": return "NULL"
    v = v.replace("\\\\", "\\").replace("\\t", "\t").replace("\\n", "\n")
    return "'" + v.replace("'", "''") + "'"
src = open(out).read().split("\n")
f = open(out, "w")
batch = []
for line in src:
    if "\t" in line and not line.startswith(("INSERT", "COPY")):
        batch.append("(" + ",".join(lit(v) for v in line.split("\t")) + ")")
    elif line == "\\." and batch:
        f.write(f"BEGIN;\nINSERT INTO callbacks ({cols}) VALUES\n" + ",\n".join(batch) +
                "\nON CONFLICT (id) DO NOTHING;\nCOMMIT;\n")
        batch = []
PY
done

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
  if [ -n "$4" ]; then "${PSQL[@]}" -d "$db" -c "$4" >/dev/null; fi
  wal=$("${PSQL[@]}" -d "$db" -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
  python3 -c "print(f'{($after - $before) * 1e6 / $TICK / $ROWS:.1f}/{$wal / $ROWS:.0f}')"
}

# label | database | SQL before | batches | SQL after
VARIANTS=(
  "body stored twice (before 0013)|before||before|"
  "body stored once (0013, as migrated)|now||now|"
  "  without callbacks_received|now|DROP INDEX callbacks_received|now|CREATE INDEX callbacks_received ON callbacks (received_at DESC)"
  "  without callbacks_callid_received|now|DROP INDEX callbacks_callid_received|now|CREATE INDEX callbacks_callid_received ON callbacks (callid, received_at)"
  "  without the unique reference|now|ALTER TABLE callbacks DROP CONSTRAINT callbacks_reference_key|now|ALTER TABLE callbacks ADD CONSTRAINT callbacks_reference_key UNIQUE (reference)"
  "  without callbacks_ice_called and _cli|now|DROP INDEX callbacks_ice_called; DROP INDEX callbacks_ice_cli|now|CREATE INDEX callbacks_ice_called ON callbacks (called, received_at DESC) WHERE event_type = 'ice'; CREATE INDEX callbacks_ice_cli ON callbacks (caller, received_at DESC) WHERE event_type = 'ice'"
  "  reply as json, not jsonb|now|CREATE TABLE saved AS SELECT v, pg_get_viewdef(v) AS d FROM unnest(ARRAY['gate_misses', 'call_timeline']) v; DROP VIEW gate_misses, call_timeline; ALTER TABLE callbacks ALTER reply TYPE json|now|ALTER TABLE callbacks ALTER reply TYPE jsonb; DO \$\$ DECLARE s record; BEGIN FOR s IN SELECT * FROM saved LOOP EXECUTE format('CREATE VIEW %I AS %s', s.v, s.d); END LOOP; END \$\$; DROP TABLE saved"
  "  no jsonb parse at all (flags from svamlgate)|now||noparse|"
  "  plus a call_state upsert per callback|now||state|"
  "  without the console trigger|now|ALTER TABLE callbacks DISABLE TRIGGER callbacks_console_counts|now|ALTER TABLE callbacks ENABLE TRIGGER callbacks_console_counts"
  "COPY straight into callbacks (the fast path, text)|now||direct|"
  "  the same, binary COPY (the shipper, session 9)|now||binary|"
  "  without callbacks_unredacted|now|DROP INDEX callbacks_unredacted|direct|CREATE INDEX callbacks_unredacted ON callbacks (received_at) WHERE redacted_at IS NULL"
  "  without the console trigger (fast path)|now|ALTER TABLE callbacks DISABLE TRIGGER callbacks_console_counts|direct|ALTER TABLE callbacks ENABLE TRIGGER callbacks_console_counts"
  "  plus a call_state upsert per callback (fast path)|now||dstate|"
  "  plus call_state COPYed straight in (fast path, new calls)|now||dnew|"
  "multi-row INSERT, body twice (the shipper before COPY)|before||insert|"
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
echo "PostgreSQL CPU and WAL per shipped callback row: median of $REPEAT rounds of $ROWS rows (batches of 500, checkpoint included in CPU)"
for v in "${VARIANTS[@]}"; do
  IFS='|' read -r label _ <<<"$v"
  python3 -c "import statistics,sys; p=[x.split('/') for x in sys.argv[2].split()]; f=[float(c) for c, _ in p]; w=[float(b) for _, b in p]; print(f'%-55s %6.1f us/row %6.0f WAL bytes/row   (%s)' % (sys.argv[1], statistics.median(f), statistics.median(w), ' '.join(c for c, _ in p)))" "$label" "${FIG[$label]:-}"
done
