-- Budget thresholds (webhooks): the balance an account was funded with
-- (at creation, or its last top-up), which of its thresholds were
-- reported, and the generation of that funding (a top-up starts a new
-- one, whose thresholds are reported again).
ALTER TABLE accounts
    ADD COLUMN budget_base_micros bigint NOT NULL DEFAULT 0,
    ADD COLUMN budget_generation  integer NOT NULL DEFAULT 1,
    ADD COLUMN alerted_80         boolean NOT NULL DEFAULT false,
    ADD COLUMN alerted_100        boolean NOT NULL DEFAULT false;
UPDATE accounts SET budget_base_micros = GREATEST(balance_micros, 0);
