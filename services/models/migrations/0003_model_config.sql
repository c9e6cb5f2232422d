-- Models as configuration: Model objects (services/models/api) declare
-- engine openai's upstreams, who may see a model, and where a model comes
-- from. source: 'seed' (these migrations), 'registry' (RegisterModel,
-- fine-tuning) or 'config' (a Model object, owned by the configuration:
-- when its object is removed the model is disabled, never deleted).
ALTER TABLE models
    ADD COLUMN upstreams jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN passive_health jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN visible_to text[] NOT NULL DEFAULT '{}',
    ADD COLUMN source text NOT NULL DEFAULT 'registry' CHECK (source IN ('seed', 'registry', 'config'));

UPDATE models SET source = 'seed' WHERE name IN ('deepseek-chat', 'deepseek-reasoner', 'deepseek-v4-flash', 'deepseek-v4-pro') AND account_id = '';
