-- Conversation context: each completion's new turns, grouped by
-- conversation (the same account and opening messages).
CREATE TABLE conversations (
    id          text PRIMARY KEY,
    account_id  text NOT NULL,
    model       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_account ON conversations (account_id, updated_at);

CREATE TABLE messages (
    conversation_id  text NOT NULL REFERENCES conversations (id),
    request_id       text NOT NULL,
    seq              integer NOT NULL,
    role             text NOT NULL,
    content          text NOT NULL,
    finish_reason    text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, request_id, seq)
);
