-- svamlgate: flows that change safely. Draft versions, explicit publishing (with the check that was run
-- and whether it was forced), and shadow evaluation of a candidate version on a route.

ALTER TABLE flow_versions ADD COLUMN status text NOT NULL DEFAULT 'published'
    CHECK (status IN ('draft', 'published'));
COMMENT ON COLUMN flow_versions.status IS 'draft: saved but never live (PUT ?draft=true or "status": "draft"); published: it was live at least once (flows.current_version names the live one). Versions saved before drafts existed are published.';

CREATE TABLE flow_publications (
    id                bigserial   PRIMARY KEY,
    flow_id           bigint      NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    version           integer     NOT NULL,
    previous_version  integer,
    published_at      timestamptz NOT NULL DEFAULT now(),
    via               text        NOT NULL CHECK (via IN ('create', 'put', 'publish')),
    forced            boolean     NOT NULL DEFAULT false,
    reason            text,
    errors            integer     NOT NULL DEFAULT 0,
    warnings          integer     NOT NULL DEFAULT 0,
    report            jsonb,
    FOREIGN KEY (flow_id, version) REFERENCES flow_versions (flow_id, version) ON DELETE CASCADE
);
COMMENT ON TABLE flow_publications IS 'Every time a version became the live one: by creating the flow, by a PUT without draft (today''s behaviour, no coverage check), or by POST .../publish (coverage checked; a rollback is the publish of an earlier version).';
COMMENT ON COLUMN flow_publications.id IS 'Row id (in the order of publication).';
COMMENT ON COLUMN flow_publications.flow_id IS 'The flow.';
COMMENT ON COLUMN flow_publications.version IS 'The version that became live.';
COMMENT ON COLUMN flow_publications.previous_version IS 'The version that was live before (NULL for a new flow).';
COMMENT ON COLUMN flow_publications.published_at IS 'When it became live.';
COMMENT ON COLUMN flow_publications.via IS 'create, put (PUT without draft) or publish.';
COMMENT ON COLUMN flow_publications.forced IS 'true when the coverage check found errors and "force" was given.';
COMMENT ON COLUMN flow_publications.reason IS 'The reason given with force (free text), if any.';
COMMENT ON COLUMN flow_publications.errors IS 'Errors the coverage check found (publish only).';
COMMENT ON COLUMN flow_publications.warnings IS 'Warnings the coverage check found (publish only).';
COMMENT ON COLUMN flow_publications.report IS 'The coverage report''s findings when the publish was forced (NULL otherwise).';
CREATE INDEX flow_publications_flow ON flow_publications (flow_id, published_at DESC);

ALTER TABLE routes ADD COLUMN shadow_version integer;
COMMENT ON COLUMN routes.shadow_version IS 'A version of the route''s flow evaluated in the shadow of every live event on this route: its reply is computed off the reply path, never sent, and compared with the reply sent. NULL: no shadow.';

CREATE TABLE shadow_differences (
    id                bigserial   PRIMARY KEY,
    flow_id           bigint      NOT NULL,
    version           integer     NOT NULL,
    route_id          bigint,
    callid            text,
    callback_reference text,
    event_type        text        NOT NULL,
    received_at       timestamptz NOT NULL,
    live_version      integer,
    live_node         text,
    candidate_node    text,
    input             jsonb,
    live_reply        jsonb,
    candidate_reply   jsonb,
    candidate_passed  boolean     NOT NULL,
    note              text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE shadow_differences IS 'Live events on a shadowed route whose candidate reply differed from the reply sent (the latest 1,000 per flow version are kept).';
COMMENT ON COLUMN shadow_differences.id IS 'Row id (in the order of comparison).';
COMMENT ON COLUMN shadow_differences.flow_id IS 'The flow.';
COMMENT ON COLUMN shadow_differences.version IS 'The candidate version that was shadowed.';
COMMENT ON COLUMN shadow_differences.route_id IS 'The route the event came in on.';
COMMENT ON COLUMN shadow_differences.callid IS 'Sinch call id.';
COMMENT ON COLUMN shadow_differences.callback_reference IS 'Reference of the live callback (its row in callbacks).';
COMMENT ON COLUMN shadow_differences.event_type IS 'ice, ace or pie.';
COMMENT ON COLUMN shadow_differences.received_at IS 'When the live event arrived.';
COMMENT ON COLUMN shadow_differences.live_version IS 'The version that answered the live event.';
COMMENT ON COLUMN shadow_differences.live_node IS 'The node that answered the live event.';
COMMENT ON COLUMN shadow_differences.candidate_node IS 'The node of the candidate that would have answered.';
COMMENT ON COLUMN shadow_differences.input IS 'For a PIE: what the caller did (the key pressed, as derived from the menu sent) and how it reads in the candidate.';
COMMENT ON COLUMN shadow_differences.live_reply IS 'The reply sent.';
COMMENT ON COLUMN shadow_differences.candidate_reply IS 'The reply the candidate would have sent (after the gate).';
COMMENT ON COLUMN shadow_differences.candidate_passed IS 'Whether the gate passed the candidate''s reply (false: the fallback would have gone out).';
COMMENT ON COLUMN shadow_differences.note IS 'Why they differ in words, e.g. that the recorded input has no meaning in the candidate.';
COMMENT ON COLUMN shadow_differences.created_at IS 'When the difference was stored.';
CREATE INDEX shadow_differences_version ON shadow_differences (flow_id, version, id DESC);

CREATE TABLE shadow_totals (
    flow_id    bigint      NOT NULL,
    version    integer     NOT NULL,
    compared   bigint      NOT NULL DEFAULT 0,
    differing  bigint      NOT NULL DEFAULT 0,
    refused    bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow_id, version)
);
COMMENT ON TABLE shadow_totals IS 'Per shadowed flow version: live events compared, how many differed, how many candidate replies the gate refused.';
COMMENT ON COLUMN shadow_totals.flow_id IS 'The flow.';
COMMENT ON COLUMN shadow_totals.version IS 'The candidate version.';
COMMENT ON COLUMN shadow_totals.compared IS 'Live events compared.';
COMMENT ON COLUMN shadow_totals.differing IS 'Events whose candidate reply or node differed (all of them, also those no longer kept).';
COMMENT ON COLUMN shadow_totals.refused IS 'Candidate replies the gate refused.';
COMMENT ON COLUMN shadow_totals.updated_at IS 'Last comparison.';
