-- DeepSeek V4: deepseek-v4-flash and deepseek-v4-pro think by default;
-- deepseek-chat and deepseek-reasoner stay as deprecated names of flash
-- without and with thinking, at flash's prices. Prices follow DeepSeek's
-- published list per million tokens (flash: 0.0028 from cache, 0.14 input,
-- 0.28 output; pro: 0.0145, 1.74, 3.48), in micro-units. All four are
-- served by the builtin engine until an operator points them elsewhere.
ALTER TABLE models
    ADD COLUMN thinking text NOT NULL DEFAULT 'none' CHECK (thinking IN ('none', 'on', 'off')),
    ADD COLUMN deprecated_for text NOT NULL DEFAULT '';

INSERT INTO models (name, engine, engine_model, context_length, max_output_tokens, default_max_tokens, fallbacks,
                    prompt_price_micros_per_mtok, cache_hit_price_micros_per_mtok, completion_price_micros_per_mtok, thinking)
VALUES ('deepseek-v4-flash', 'builtin', 'opticks-3gram', 8192, 4096, 512, '{}', 140000, 2800, 280000, 'on'),
       ('deepseek-v4-pro', 'builtin', 'opticks-3gram', 8192, 4096, 512, '{deepseek-v4-flash}', 1740000, 14500, 3480000, 'on')
ON CONFLICT (name) DO NOTHING;

UPDATE models SET thinking = 'off', deprecated_for = 'deepseek-v4-flash', fallbacks = '{}',
    prompt_price_micros_per_mtok = 140000, cache_hit_price_micros_per_mtok = 2800, completion_price_micros_per_mtok = 280000,
    version = version + 1, updated_at = now()
WHERE name = 'deepseek-chat' AND engine = 'builtin';
UPDATE models SET thinking = 'on', deprecated_for = 'deepseek-v4-flash',
    prompt_price_micros_per_mtok = 140000, cache_hit_price_micros_per_mtok = 2800, completion_price_micros_per_mtok = 280000,
    version = version + 1, updated_at = now()
WHERE name = 'deepseek-reasoner' AND engine = 'builtin';
