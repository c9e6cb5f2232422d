CREATE TABLE tiers (
    name                     text PRIMARY KEY,
    max_concurrent_requests  integer NOT NULL,
    tokens_per_minute        bigint NOT NULL,
    requests_per_minute      bigint NOT NULL
);
INSERT INTO tiers VALUES
    ('free',        4,     100000,    60),
    ('standard',   32,    1000000,   600),
    ('enterprise', 256,  10000000,  6000);

-- Limits left NULL follow the tier.
CREATE TABLE accounts (
    id                       text PRIMARY KEY,
    name                     text NOT NULL,
    email                    text NOT NULL DEFAULT '',
    tier                     text NOT NULL REFERENCES tiers (name),
    max_concurrent_requests  integer,
    tokens_per_minute        bigint,
    requests_per_minute      bigint,
    balance_micros           bigint NOT NULL DEFAULT 0,
    disabled                 boolean NOT NULL DEFAULT false,
    created_at               timestamptz NOT NULL DEFAULT now()
);

-- The durable usage ledger: one row per request, written once (the
-- request id is the key), with the balance debited in the same
-- transaction.
CREATE TABLE usage_ledger (
    request_id                text PRIMARY KEY,
    account_id                text NOT NULL REFERENCES accounts (id),
    model                     text NOT NULL,
    prompt_tokens             bigint NOT NULL,
    completion_tokens         bigint NOT NULL,
    prompt_cache_hit_tokens   bigint NOT NULL,
    prompt_cache_miss_tokens  bigint NOT NULL,
    cost_micros               bigint NOT NULL,
    created_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_ledger_account_time ON usage_ledger (account_id, created_at);
