-- The finalizer owns the "finalizer" schema: one row per ended persistent session.
CREATE SCHEMA IF NOT EXISTS finalizer;

CREATE TABLE finalizer.finalizations (
    session_id        text PRIMARY KEY,
    thread_id         text NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed', 'failed')),
    turn_count        integer NOT NULL DEFAULT 0,
    summary           text,
    themes            jsonb NOT NULL DEFAULT '[]'::jsonb,
    mood_opened       text,
    mood_closed       text,
    open_loops        jsonb NOT NULL DEFAULT '[]'::jsonb,
    resolved_threads  jsonb NOT NULL DEFAULT '[]'::jsonb,
    detail            text NOT NULL DEFAULT '',
    attempts          integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Feedback keeps no user text and no user id: a label, the opaque session id, a turn count.
CREATE TABLE finalizer.session_feedback (
    session_id  text PRIMARY KEY REFERENCES finalizer.finalizations (session_id) ON DELETE CASCADE,
    label       text NOT NULL CHECK (label IN ('positive', 'negative', 'skip')),
    turn_count  integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL DEFAULT now() + interval '180 days'
);
