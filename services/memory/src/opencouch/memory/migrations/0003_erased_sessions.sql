-- Sessions whose owner asked to forget everything, as sha256 of their ids (not even the id is
-- kept), so that a turn or a session's commit arriving after the erasure (a late delivery, a
-- finalizer still at work) is dropped instead of bringing the data back. Kept as long as a late
-- delivery may come.
CREATE TABLE memory.erased_sessions (
    session_hash  text PRIMARY KEY,
    erased_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erased_sessions_by_time ON memory.erased_sessions (erased_at);
