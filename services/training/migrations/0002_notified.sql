-- Whether a job's end was put on the notifications topic (webhooks).
ALTER TABLE jobs ADD COLUMN notified boolean NOT NULL DEFAULT false;
CREATE INDEX jobs_to_notify ON jobs (finished_at) WHERE NOT notified AND status IN ('succeeded', 'failed', 'cancelled');
