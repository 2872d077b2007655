-- depends: 0001_finalizations
-- The session arc's remaining fields, why a finalization is waiting, the signed reports owed
-- to the operator's webhook, and the sessions whose owner asked to be forgotten.

ALTER TABLE finalizer.finalizations
    ADD COLUMN summary_method      text CHECK (summary_method IN ('model', 'extractive')),
    ADD COLUMN duration_seconds    integer,
    ADD COLUMN peak_crisis_level   smallint CHECK (peak_crisis_level BETWEEN 0 AND 3),
    ADD COLUMN memories_committed  integer NOT NULL DEFAULT 0,
    ADD COLUMN finalized_at        timestamptz,
    -- Why the last attempt had to wait or stop: our own words, never user text.
    ADD COLUMN waiting_for         text;
UPDATE finalizer.finalizations SET finalized_at = updated_at
WHERE status IN ('completed', 'failed');

CREATE INDEX session_feedback_by_expiry ON finalizer.session_feedback (expires_at);

-- One report per finalized session, sent by whichever replica claims it first. A claim is a
-- lease: a replica that dies mid-send leaves it to be claimed again once the lease ends.
CREATE TABLE finalizer.webhook_deliveries (
    session_id        text PRIMARY KEY
                      REFERENCES finalizer.finalizations (session_id) ON DELETE CASCADE,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    claimed_until     timestamptz,
    last_status_code  integer,
    last_error        text,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON finalizer.webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- Sessions erased at their owner's request: a late or repeated end of one of them must not
-- write anything again. Ids only; kept until no end event of theirs can still arrive.
CREATE TABLE finalizer.erased_sessions (
    session_id  text PRIMARY KEY,
    erased_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erased_sessions_by_age ON finalizer.erased_sessions (erased_at);
