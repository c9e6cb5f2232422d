-- API keys. The secret itself is never stored: only its HMAC-SHA256 under
-- a pepper held in Vault, so a copy of this table is useless alone.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    account_id    text NOT NULL,
    name          text NOT NULL DEFAULT '',
    prefix        text NOT NULL,
    hash          text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('user', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id, created_at);
