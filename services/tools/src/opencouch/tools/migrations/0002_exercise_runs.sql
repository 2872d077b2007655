-- A persistent session's guided exercise, so it survives losing Redis. Incognito sessions keep
-- theirs in Redis only. The exercise and step are catalog ids; nothing the user said is kept.
CREATE TABLE tools.exercise_runs (
    session_id    text PRIMARY KEY CHECK (session_id ~ '^vs_[0-9a-f]{32}$'),
    exercise_id   text NOT NULL,
    step_index    smallint NOT NULL CHECK (step_index >= 0),
    state         jsonb NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exercise_runs_by_time ON tools.exercise_runs (updated_at);
