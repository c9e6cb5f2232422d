-- The ledger is written from the usage events (services/events: Usage),
-- with what each says of its request; created_at is when the request
-- finished (not when its event was consumed), and position the order in
-- which the ledger took the events.
ALTER TABLE usage_ledger
    ADD COLUMN key_id           text NOT NULL DEFAULT '',
    ADD COLUMN model_version    bigint NOT NULL DEFAULT 0,
    ADD COLUMN asked_model      text NOT NULL DEFAULT '',
    ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN outcome          text NOT NULL DEFAULT 'ok',
    ADD COLUMN finish_reason    text NOT NULL DEFAULT '',
    ADD COLUMN cache_hit        boolean NOT NULL DEFAULT false,
    ADD COLUMN started_at       timestamptz,
    ADD COLUMN producer         text NOT NULL DEFAULT '',
    ADD COLUMN sequence         bigint NOT NULL DEFAULT 0,
    ADD COLUMN position         bigint GENERATED ALWAYS AS IDENTITY;
