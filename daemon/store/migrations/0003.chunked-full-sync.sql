-- A full sync that stops for quota commits its messages chunk by chunk (daemon.policy.
-- quota_deferral). What each chunk found is remembered here, so the last chunk removes
-- exactly the stored messages the whole listing did not find, and nothing it did.
CREATE TABLE full_sync_seen (
    mailbox_id  bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    provider_id text   NOT NULL,
    PRIMARY KEY (mailbox_id, provider_id)
);
-- A run that committed one chunk of a full sync and gave its worker back.
ALTER TABLE sync_runs ADD COLUMN partial boolean NOT NULL DEFAULT false;
