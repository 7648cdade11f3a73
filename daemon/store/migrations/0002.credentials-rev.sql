-- Counts credential changes made by the user (registration is 0, every
-- PUT /mailboxes/{id}/credentials adds 1), not the refresh-token rotations a provider does on
-- its own: cached access tokens belong to one revision, and a rotated token is only saved if
-- the revision it was derived from is still current.
ALTER TABLE mailboxes ADD COLUMN credentials_rev bigint NOT NULL DEFAULT 0;
