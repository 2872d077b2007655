-- Erasures memory has committed but not yet finished everywhere: the copies outside Postgres
-- (held candidates in Redis, turn messages in JetStream) and the OwnerErased event that tells
-- every other service which sessions to forget. The row is written in the transaction that
-- deletes the owner's rows and removed once all of that is done, so an erasure interrupted
-- after its commit is finished by a retry or by the service's sweep: never half-done for good.
-- One row per owner; a retry merges into it. It names ids only, never content, and only while
-- the erasure is unfinished.
CREATE TABLE memory.erasures (
    owner_key     text PRIMARY KEY,
    erasure_id    text NOT NULL UNIQUE,
    user_id       text,
    thread_id     text,
    session_ids   text[] NOT NULL,
    thread_ids    text[] NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((user_id IS NULL) <> (thread_id IS NULL))
);
CREATE INDEX erasures_by_time ON memory.erasures (requested_at);
