-- svamlgate: call flows (versioned), routes, per-call flow state, and upstream exchanges.

CREATE TABLE flows (
    id               bigserial   PRIMARY KEY,
    name             text        NOT NULL UNIQUE,
    current_version  integer     NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE flows IS 'Declarative call flows. The document of each version is in flow_versions.';
COMMENT ON COLUMN flows.id IS 'Flow id, used by routes and the admin API.';
COMMENT ON COLUMN flows.name IS 'Unique human name of the flow.';
COMMENT ON COLUMN flows.current_version IS 'The version new calls use.';
COMMENT ON COLUMN flows.created_at IS 'When the flow was created.';
COMMENT ON COLUMN flows.updated_at IS 'When the last version was saved.';

CREATE TABLE flow_versions (
    flow_id     bigint      NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    version     integer     NOT NULL,
    document    jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow_id, version)
);
COMMENT ON TABLE flow_versions IS 'Every saved version of every flow; a version is immutable once saved and was validated through the gate before it was stored.';
COMMENT ON COLUMN flow_versions.flow_id IS 'The flow.';
COMMENT ON COLUMN flow_versions.version IS 'Version number, 1, 2, 3, … per flow.';
COMMENT ON COLUMN flow_versions.document IS 'The flow document (JSON, the same format as the import/export files).';
COMMENT ON COLUMN flow_versions.created_at IS 'When this version was saved.';

CREATE TABLE routes (
    id               bigserial   PRIMARY KEY,
    name             text        NOT NULL UNIQUE,
    called           text,
    caller_prefix    text,
    priority         integer     NOT NULL DEFAULT 0,
    target_kind      text        NOT NULL CHECK (target_kind IN ('flow', 'upstream')),
    flow_id          bigint      REFERENCES flows (id) ON DELETE RESTRICT,
    upstream_url     text,
    upstream_key     text,
    upstream_secret  text,
    upstream_timeout_ms integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((target_kind = 'flow') = (flow_id IS NOT NULL)),
    CHECK ((target_kind = 'upstream') = (upstream_url IS NOT NULL))
);
COMMENT ON TABLE routes IS 'Which reply source answers a call: picked by the called number (to.endpoint) and optionally a caller prefix; a route with called NULL is the default route.';
COMMENT ON COLUMN routes.id IS 'Route id.';
COMMENT ON COLUMN routes.name IS 'Unique human name.';
COMMENT ON COLUMN routes.called IS 'Called number in E.164 (+ and digits); NULL for the default route.';
COMMENT ON COLUMN routes.caller_prefix IS 'Optional caller number prefix (E.164 digits, with +); the longest matching prefix wins.';
COMMENT ON COLUMN routes.priority IS 'Tie-break between otherwise equal routes: higher wins.';
COMMENT ON COLUMN routes.target_kind IS 'flow (answer from a stored flow) or upstream (forward to the customer''s app).';
COMMENT ON COLUMN routes.flow_id IS 'The flow, for target_kind = flow.';
COMMENT ON COLUMN routes.upstream_url IS 'The customer app URL, for target_kind = upstream.';
COMMENT ON COLUMN routes.upstream_key IS 'Application key used to sign forwarded requests.';
COMMENT ON COLUMN routes.upstream_secret IS 'Base64 secret used to sign forwarded requests. Never returned by the admin API.';
COMMENT ON COLUMN routes.upstream_timeout_ms IS 'Optional per-route upstream timeout; the reply deadline still applies.';
COMMENT ON COLUMN routes.created_at IS 'When the route was created.';
COMMENT ON COLUMN routes.updated_at IS 'When the route was last changed.';

CREATE TABLE call_state (
    callid        text        PRIMARY KEY,
    route_id      bigint,
    flow_id       bigint,
    flow_version  integer,
    node          text,
    context       jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE call_state IS 'Where each call in progress is: the route chosen at its first event, the flow version pinned then (kept for the whole call), the node whose SVAML was sent last, and the values of the first event (caller, called) that later events lack. Deleted at DICE.';
COMMENT ON COLUMN call_state.callid IS 'Sinch call id.';
COMMENT ON COLUMN call_state.route_id IS 'Route chosen at the first event of the call.';
COMMENT ON COLUMN call_state.flow_id IS 'Flow answering this call (NULL in proxy mode).';
COMMENT ON COLUMN call_state.flow_version IS 'Flow version pinned at the first event of the call.';
COMMENT ON COLUMN call_state.node IS 'Node whose reply was sent last; PIE transitions start from it.';
COMMENT ON COLUMN call_state.context IS 'Event values kept for placeholders: caller, called, custom, callid.';
COMMENT ON COLUMN call_state.updated_at IS 'Last change.';

ALTER TABLE callbacks ADD COLUMN flow_id bigint;
ALTER TABLE callbacks ADD COLUMN flow_version integer;
ALTER TABLE callbacks ADD COLUMN flow_node text;
ALTER TABLE callbacks ADD COLUMN route_id bigint;
COMMENT ON COLUMN callbacks.flow_id IS 'Flow that produced the reply (reply_source = flow).';
COMMENT ON COLUMN callbacks.flow_version IS 'Version of that flow.';
COMMENT ON COLUMN callbacks.flow_node IS 'Node of that flow whose SVAML was produced.';
COMMENT ON COLUMN callbacks.route_id IS 'Route that was selected for this call, if any.';

CREATE TABLE upstream_exchanges (
    callback_id  uuid        PRIMARY KEY REFERENCES callbacks (id),
    url          text        NOT NULL,
    status       smallint,
    body         text,
    latency_us   bigint      NOT NULL,
    failure      text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE upstream_exchanges IS 'Proxy mode: what the customer''s app answered for a forwarded callback.';
COMMENT ON COLUMN upstream_exchanges.callback_id IS 'The callback that was forwarded.';
COMMENT ON COLUMN upstream_exchanges.url IS 'Where it was forwarded.';
COMMENT ON COLUMN upstream_exchanges.status IS 'HTTP status of the upstream answer; NULL when none arrived.';
COMMENT ON COLUMN upstream_exchanges.body IS 'Upstream answer body (truncated to 64 KiB).';
COMMENT ON COLUMN upstream_exchanges.latency_us IS 'Time until the upstream answered or failed, in microseconds.';
COMMENT ON COLUMN upstream_exchanges.failure IS 'timeout, connect, protocol, bad_status, too_large, not_json, empty_body; NULL on success.';
COMMENT ON COLUMN upstream_exchanges.created_at IS 'When the exchange was recorded.';
