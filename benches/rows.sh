#!/usr/bin/env bash
# What one shipped callback row costs PostgreSQL, and what each index of `callbacks` adds to it.
#
#   benches/rows.sh                      # 40,000 rows per variant, three rounds
#   ROWS=100000 REPEAT=5 benches/rows.sh
#
# Starts a throwaway cluster (as the postgres user when run as root), applies migrations/*.sql,
# then ships generated callback rows the way the shipper does (batches of 500: COPY into a staging
# table, one INSERT ... SELECT ... ON CONFLICT DO NOTHING, commit), once with the schema as the
# migrations leave it and once per variant below, in REPEAT interleaved rounds (the median is
# printed). It reads the CPU time of every process of the cluster (the backends, the WAL writer, the
# checkpointer, ...) from /proc before and after, and prints microseconds of PostgreSQL CPU per row. CPU time, not wall time: the figure holds on a
# machine busy with other work. Needs initdb/postgres/psql and python3; only 127.0.0.1 is used.
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
PSQL=(psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt)
for m in migrations/*.sql; do "${PSQL[@]}" -f "$m" >/dev/null; done

# The batches, as the shipper sends them (src/db/ship.rs), generated once.
for variant in body nobody insert; do
python3 - "$ROWS" "$WORK/batches-$variant.sql" "$variant" <<'PY'
import sys, uuid, json, datetime, hashlib
rows, out, variant = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cols = ("id, reference, received_at, event_type, event_known, callid, application_key, event_timestamp, "
        "raw_body, body, parse_warnings, signature, dedup_key, remote_addr, path, duplicate_of, http_status, "
        "reply, reply_source, fallback_reason, validation, latency_us, flow_id, flow_version, flow_node, "
        "route_id, gate_verdict")
reply = json.dumps({"instructions": [], "action": {"name": "runMenu", "barge": True, "locale": "en-US",
  "mainMenu": "main", "menus": [{"id": "main", "mainPrompt": "#tts[Welcome to Example Corp. For sales, press 1. For support, press 2. To enter your PIN, press 3.]",
  "repeatPrompt": "#tts[Sorry, I did not get that. For sales, press 1. For support, press 2. To enter your PIN, press 3.]",
  "repeats": 2, "timeoutMills": 5000, "options": [{"dtmf": "1", "action": "return(sales)"},
  {"dtmf": "2", "action": "return(support)"}, {"dtmf": "3", "action": "return(pin)"}]}]}}, separators=(",", ":"))
validation = json.dumps({"valid": True, "event": "ice", "violations": [], "warnings": []}, separators=(",", ":"))
t0 = datetime.datetime.now(datetime.timezone.utc)
def esc(s): return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
with open(out, "w") as f:
    for b in range(0, rows, 500):
        f.write("BEGIN;\nSET LOCAL client_min_messages = warning;\n"
                "CREATE TEMPORARY TABLE IF NOT EXISTS ship_callbacks (LIKE callbacks) ON COMMIT DELETE ROWS;\n"
                f"COPY ship_callbacks ({cols}) FROM STDIN;\n")
        for i in range(b, min(b + 500, rows)):
            at = (t0 + datetime.timedelta(microseconds=100 * i)).strftime("%Y-%m-%d %H:%M:%S.%f+00")
            callid = f"rows-{i}"
            body = ('{"event":"ice","callid":"%s","timestamp":"%sZ","version":1,"cli":"46708168731",'
                    '"to":{"type":"number","endpoint":"+15550100"},"domain":"pstn","originationType":"PSTN",'
                    '"applicationKey":"bench-key"}' % (callid, at[:23].replace(" ", "T")))
            row = [str(uuid.uuid1()), str(uuid.uuid1()), at, "ice", "t", callid, "bench-key", at,
                   "\\\\x" + body.encode().hex(), esc(body) if variant == "body" else "\\N", "\\N", "verified",
                   hashlib.sha256(body.encode()).hexdigest(), "127.0.0.1:5000", "/sinch/callback", "\\N",
                   "200", esc(reply), "flow", "\\N", esc(validation), "850", "1", "1", "welcome", "1", "passed"]
            f.write("\t".join(row) + "\n")
        f.write("\\.\n")
        f.write(f"INSERT INTO callbacks ({cols}) SELECT {cols} FROM ship_callbacks ON CONFLICT (id) DO NOTHING;\nCOMMIT;\n")
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

measure() { # SQL applied first, batches (body, nobody or insert), SQL applied after; prints us/row
  "${PSQL[@]}" -c "SET client_min_messages = warning" -c "TRUNCATE callbacks CASCADE" -c "CHECKPOINT" >/dev/null
  if [ -n "$1" ]; then "${PSQL[@]}" -c "$1" >/dev/null; fi
  local before after
  before=$(cluster_cpu)
  "${PSQL[@]}" -f "$WORK/batches-$2.sql" >/dev/null
  "${PSQL[@]}" -c "CHECKPOINT" >/dev/null
  after=$(cluster_cpu)
  if [ -n "$3" ]; then "${PSQL[@]}" -c "$3" >/dev/null; fi
  python3 -c "print(f'{($after - $before) * 1e6 / $TICK / $ROWS:.1f}')"
}

# label | SQL before | batches | SQL after
VARIANTS=(
  "schema as migrated||body|"
  "  without callbacks_received|DROP INDEX callbacks_received|body|CREATE INDEX callbacks_received ON callbacks (received_at DESC)"
  "  without callbacks_callid_received|DROP INDEX callbacks_callid_received|body|CREATE INDEX callbacks_callid_received ON callbacks (callid, received_at)"
  "  without the unique reference|ALTER TABLE callbacks DROP CONSTRAINT callbacks_reference_key|body|ALTER TABLE callbacks ADD CONSTRAINT callbacks_reference_key UNIQUE (reference)"
  "  with callbacks_type_received (0010 drops it)|CREATE INDEX IF NOT EXISTS callbacks_type_received ON callbacks (event_type, received_at DESC)|body|DROP INDEX callbacks_type_received"
  "  body column left NULL (raw_body only)||nobody|"
  "multi-row INSERT, indexes as before 0010|CREATE INDEX IF NOT EXISTS callbacks_type_received ON callbacks (event_type, received_at DESC)|insert|DROP INDEX callbacks_type_received"
)
REPEAT=${REPEAT:-3}
measure "" body "" >/dev/null # warms up (catalogs, the page cache); not counted
declare -A FIG
for round in $(seq 1 "$REPEAT"); do
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r label before batches after <<<"$v"
    FIG[$label]+="$(measure "$before" "$batches" "$after") "
  done
done
echo "PostgreSQL CPU per shipped callback row: median of $REPEAT rounds of $ROWS rows (batches of 500, checkpoint included)"
for v in "${VARIANTS[@]}"; do
  IFS='|' read -r label _ <<<"$v"
  python3 -c "import statistics,sys; f=[float(x) for x in sys.argv[2].split()]; print(f'%-50s %6.1f us/row   (%s)' % (sys.argv[1], statistics.median(f), ' '.join(sys.argv[2].split())))" "$label" "${FIG[$label]}"
done
