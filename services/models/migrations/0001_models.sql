CREATE TABLE models (
    name                              text PRIMARY KEY,
    version                           bigint NOT NULL DEFAULT 1,
    engine                            text NOT NULL,
    engine_model                      text NOT NULL,
    context_length                    integer NOT NULL CHECK (context_length > 0),
    max_output_tokens                 integer NOT NULL CHECK (max_output_tokens > 0),
    default_max_tokens                integer NOT NULL CHECK (default_max_tokens > 0),
    fallbacks                         text[] NOT NULL DEFAULT '{}',
    state                             text NOT NULL DEFAULT 'enabled' CHECK (state IN ('enabled', 'disabled', 'unhealthy')),
    state_reason                      text NOT NULL DEFAULT '',
    owned_by                          text NOT NULL DEFAULT 'bulkhead',
    base_model                        text NOT NULL DEFAULT '',
    fine_tuning_job_id                text NOT NULL DEFAULT '',
    account_id                        text NOT NULL DEFAULT '',
    prompt_price_micros_per_mtok      bigint NOT NULL DEFAULT 0,
    cache_hit_price_micros_per_mtok   bigint NOT NULL DEFAULT 0,
    completion_price_micros_per_mtok  bigint NOT NULL DEFAULT 0,
    created_at                        timestamptz NOT NULL DEFAULT now(),
    updated_at                        timestamptz NOT NULL DEFAULT now()
);

-- The platform's public models: both served by the builtin engine out of
-- the box (re-register them with engine openai to serve a real model).
-- Prices follow DeepSeek's published list (per million tokens: 0.27 input,
-- 0.07 input from cache, 1.10 output), in micro-units.
INSERT INTO models (name, engine, engine_model, context_length, max_output_tokens, default_max_tokens, fallbacks,
                    prompt_price_micros_per_mtok, cache_hit_price_micros_per_mtok, completion_price_micros_per_mtok)
VALUES ('deepseek-chat', 'builtin', 'opticks-3gram', 8192, 4096, 256, '{}', 270000, 70000, 1100000),
       ('deepseek-reasoner', 'builtin', 'opticks-3gram', 8192, 4096, 512, '{deepseek-chat}', 550000, 140000, 2190000);
