-- DB Training: uploaded files, fine-tuning jobs, their events and
-- checkpoints (services/training).
CREATE TABLE files (
    id          text PRIMARY KEY,
    account_id  text NOT NULL,
    filename    text NOT NULL,
    purpose     text NOT NULL,
    bytes       bigint NOT NULL,
    content     bytea NOT NULL,
    examples    integer NOT NULL,
    tokens      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_account ON files (account_id, created_at);

CREATE TABLE jobs (
    id               text PRIMARY KEY,
    -- Newest first, and the cursor of the listing.
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    account_id       text NOT NULL,
    request_id       text,
    model            text NOT NULL,
    base_weights     text NOT NULL,
    fine_tuned_model text NOT NULL DEFAULT '',
    status           text NOT NULL,
    training_file    text NOT NULL REFERENCES files (id),
    validation_file  text REFERENCES files (id),
    n_epochs         integer NOT NULL,
    batch_size       integer NOT NULL,
    lr_multiplier    double precision NOT NULL,
    suffix           text NOT NULL DEFAULT '',
    seed             bigint NOT NULL,
    price_micros_per_mtok bigint NOT NULL,
    trained_tokens   bigint NOT NULL DEFAULT 0,
    error_code       text NOT NULL DEFAULT '',
    error_message    text NOT NULL DEFAULT '',
    error_param      text NOT NULL DEFAULT '',
    -- The worker running it and until when its claim holds.
    worker           text NOT NULL DEFAULT '',
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (account_id, request_id)
);
CREATE INDEX jobs_account ON jobs (account_id, seq DESC);

CREATE TABLE job_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      text NOT NULL REFERENCES jobs (id),
    level       text NOT NULL,
    message     text NOT NULL,
    type        text NOT NULL DEFAULT 'message',
    metrics     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_events_job ON job_events (job_id, seq DESC);

-- One row per epoch: made when the epoch starts (with the reservation that
-- pays for it), completed with the adapter learnt so far when it ends.
CREATE TABLE checkpoints (
    job_id          text NOT NULL REFERENCES jobs (id),
    epoch           integer NOT NULL,
    reservation_id  text NOT NULL DEFAULT '',
    cost_micros     bigint NOT NULL DEFAULT 0,
    tokens          bigint NOT NULL DEFAULT 0,
    step            integer NOT NULL DEFAULT 0,
    adapter         bytea,
    metrics         jsonb NOT NULL DEFAULT '{}',
    charged         boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    PRIMARY KEY (job_id, epoch)
);
