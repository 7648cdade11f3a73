-- Tenants, mailboxes with their sync state, stored messages and the log of sync runs.

CREATE TABLE tenants (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    sync_interval_s integer CHECK (sync_interval_s > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailboxes (
    id                bigserial PRIMARY KEY,
    tenant_id         bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider          text NOT NULL CHECK (provider IN ('gmail', 'graph', 'imap')),
    address           text NOT NULL CHECK (length(address) BETWEEN 1 AND 320),
    config            jsonb NOT NULL DEFAULT '{}'::jsonb,
    credentials       bytea NOT NULL,
    sync_interval_s   integer CHECK (sync_interval_s > 0),
    cursor            jsonb,
    status            text NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'needs_reauth', 'error', 'paused')),
    status_reason     text,
    state             text NOT NULL DEFAULT 'idle' CHECK (state IN ('idle', 'queued', 'running')),
    tier              text CHECK (tier IN ('high', 'normal', 'low')),
    kind              text CHECK (kind IN ('full', 'incremental')),
    run_seq           bigint NOT NULL DEFAULT 0,
    run_token         uuid,
    queued_at         timestamptz,
    started_at        timestamptz,
    resync_requested  boolean NOT NULL DEFAULT false,
    next_sync_at      timestamptz NOT NULL DEFAULT now(),
    last_sync_at      timestamptz,
    last_success_at   timestamptz,
    failure_count     integer NOT NULL DEFAULT 0,
    message_count     integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, provider, address)
);

-- The scheduler's claim: idle, active, due, oldest first.
CREATE INDEX mailboxes_due_idx ON mailboxes (next_sync_at, id)
    WHERE state = 'idle' AND status = 'active';
-- The reaper's scan of queued and running mailboxes.
CREATE INDEX mailboxes_inflight_idx ON mailboxes (state, queued_at) WHERE state <> 'idle';

CREATE TABLE messages (
    mailbox_id          bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    provider_id         text NOT NULL,
    folder              text NOT NULL DEFAULT '',
    thread_id           text,
    internet_message_id text,
    subject             text,
    sender              text,
    received_at         timestamptz,
    size                integer,
    flags               text[] NOT NULL DEFAULT '{}',
    parse_error         text,
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, provider_id)
);
CREATE INDEX messages_folder_idx ON messages (mailbox_id, folder);

CREATE TABLE sync_runs (
    id                bigserial PRIMARY KEY,
    mailbox_id        bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    run_seq           bigint NOT NULL,
    kind              text NOT NULL,
    tier              text NOT NULL,
    worker            text NOT NULL,
    queued_at         timestamptz,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    api_calls         integer NOT NULL DEFAULT 0,
    added             integer NOT NULL DEFAULT 0,
    changed           integer NOT NULL DEFAULT 0,
    deleted           integer NOT NULL DEFAULT 0,
    skipped           integer NOT NULL DEFAULT 0,
    fell_back_to_full boolean NOT NULL DEFAULT false,
    error_kind        text,
    error             text
);
CREATE INDEX sync_runs_mailbox_idx ON sync_runs (mailbox_id, started_at);
CREATE INDEX sync_runs_finished_idx ON sync_runs (finished_at);
