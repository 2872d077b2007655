-- The crisis log: one row per user turn the classifier put at level 2 or 3, in every memory
-- mode. It is the only durable trace an incognito session leaves, so it holds nothing that
-- identifies a person or repeats what they said: an opaque hash of the voice session, a hash
-- of the turn (for idempotency), the level, a reason code and the time.
CREATE SCHEMA IF NOT EXISTS tools;

CREATE TABLE tools.crisis_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_hash  text NOT NULL CHECK (session_hash ~ '^[0-9a-f]{64}$'),
    turn_hash     text NOT NULL CHECK (turn_hash ~ '^[0-9a-f]{64}$'),
    level         smallint NOT NULL CHECK (level IN (2, 3)),
    reason        text NOT NULL CHECK (reason ~ '^[a-z_]{1,64}$'),
    logged_at     timestamptz NOT NULL DEFAULT now(),
    -- A redelivered or re-screened turn is logged once.
    CONSTRAINT crisis_log_once_per_turn UNIQUE (turn_hash)
);
CREATE INDEX crisis_log_by_time ON tools.crisis_log (logged_at);

-- Append-only: a row is never changed, and removed only once the retention period is over.
CREATE FUNCTION tools.crisis_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'tools.crisis_log is append-only';
    END IF;
    IF OLD.logged_at > now() - interval '90 days' THEN
        RAISE EXCEPTION 'tools.crisis_log rows are kept for 90 days';
    END IF;
    RETURN OLD;
END;
$$;

CREATE TRIGGER crisis_log_append_only
BEFORE UPDATE OR DELETE ON tools.crisis_log
FOR EACH ROW EXECUTE FUNCTION tools.crisis_log_append_only();
