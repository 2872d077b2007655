-- Owners (a user, or a thread) whose erasure forgot everything said until then, as sha256 of
-- their owner key ("user:<id>", "thread:<id>"; not even the id is kept), with when. What
-- arrives afterwards from before that moment (a turn memory was still behind on, of a session
-- the erasure could not know of; a finalizer's commit of an earlier session) is dropped; what
-- was said after it (a new session) is kept. Kept as long as erased sessions are.
CREATE TABLE memory.erased_owners (
    owner_hash  text PRIMARY KEY,
    erased_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erased_owners_by_time ON memory.erased_owners (erased_at);
