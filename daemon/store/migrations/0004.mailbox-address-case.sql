-- Addresses are compared case-insensitively (docs/daemon.md, "Registration rules"): the
-- daemon stores them lower-case, and one tenant cannot register an account of a provider
-- twice in different case. A database that already holds such twins stops here, naming
-- them: delete one of each pair (DELETE /mailboxes/{id}) and migrate again.
DO $$
DECLARE
    twins text;
BEGIN
    SELECT string_agg(format('tenant %s %s:%s', tenant_id, provider, addr), ', ')
      INTO twins
      FROM (SELECT tenant_id, provider, lower(address) AS addr FROM mailboxes
            GROUP BY 1, 2, 3 HAVING count(*) > 1) AS d;
    IF twins IS NOT NULL THEN
        RAISE EXCEPTION 'mailboxes registered twice with addresses differing only in case: %',
            twins;
    END IF;
END
$$;

UPDATE mailboxes SET address = lower(address) WHERE address <> lower(address);

ALTER TABLE mailboxes DROP CONSTRAINT mailboxes_tenant_id_provider_address_key;
CREATE UNIQUE INDEX mailboxes_account_idx ON mailboxes (tenant_id, provider, lower(address));
