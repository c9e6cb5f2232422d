-- DB Webhooks: the accounts' endpoints and the deliveries to them.
CREATE TABLE endpoints (
    id           text PRIMARY KEY,
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    account_id   text NOT NULL,
    url          text NOT NULL,
    event_types  text[] NOT NULL,
    description  text NOT NULL DEFAULT '',
    -- The signing key, sealed (AES-GCM under the service's Vault-held key).
    secret       bytea NOT NULL,
    secret_hint  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE INDEX endpoints_account ON endpoints (account_id) WHERE deleted_at IS NULL;

-- One row per notification and endpoint: the same notification reported
-- twice is delivered once.
CREATE TABLE deliveries (
    id               text PRIMARY KEY,
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    endpoint_id      text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    account_id       text NOT NULL,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    payload          text NOT NULL,
    -- pending, delivered or dead.
    status           text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    first_attempt_at timestamptz,
    last_status      integer NOT NULL DEFAULT 0,
    last_error       text NOT NULL DEFAULT '',
    lease_until      timestamptz,
    finished_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_dead ON deliveries (account_id, seq DESC) WHERE status = 'dead';
