-- Transcripts and the memory layers the context is built from. The memory service owns the
-- "memory" schema; no other service reads it directly.
CREATE SCHEMA IF NOT EXISTS memory;

CREATE TABLE memory.threads (
    thread_id   text PRIMARY KEY,
    user_id     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memory.turns (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thread_id       text NOT NULL REFERENCES memory.threads (thread_id) ON DELETE CASCADE,
    client_turn_id  text NOT NULL,
    session_id      text NOT NULL,
    user_text       text NOT NULL,
    assistant_text  text NOT NULL,
    route           text NOT NULL,
    response_style  text NOT NULL,
    tool_calls      jsonb NOT NULL DEFAULT '[]'::jsonb,
    outcome         text NOT NULL,
    recorded_at     timestamptz NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    -- A retried or redelivered turn is stored once.
    CONSTRAINT turns_once_per_client_id UNIQUE (thread_id, client_turn_id)
);
CREATE INDEX turns_by_session ON memory.turns (session_id, id);

-- Owner = "user:<user_id>" when a user id is known, else "thread:<thread_id>".
CREATE TABLE memory.owner_settings (
    owner_key                 text PRIMARY KEY,
    proactive_recall_enabled  boolean NOT NULL DEFAULT false,
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- Procedural memory: how the owner asked to be answered.
CREATE TABLE memory.response_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_key   text NOT NULL,
    rule_text   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX response_rules_by_owner ON memory.response_rules (owner_key, id);
