-- depends: 0001_transcripts
-- Durable memory in three layers (facts, session summaries, rules), each row with its source;
-- turns unique per voice session and ordered by when speech started; crisis levels per turn.

-- A client turn id is unique within a voice session, not within a thread: a later session of
-- the same thread may reuse one. Every (thread, id) pair was unique, so every (session, id)
-- pair is too: swapping the constraint cannot fail on existing rows.
ALTER TABLE memory.turns DROP CONSTRAINT turns_once_per_client_id;
ALTER TABLE memory.turns
    ADD CONSTRAINT turns_once_per_session UNIQUE (session_id, client_turn_id),
    ADD COLUMN user_id text,
    ADD COLUMN started_at timestamptz,
    -- Speech order: when the user started speaking, else when the turn was recorded.
    ADD COLUMN spoken_at timestamptz GENERATED ALWAYS AS (COALESCE(started_at, recorded_at)) STORED;
DROP INDEX memory.turns_by_session;
CREATE INDEX turns_by_session_in_speech_order ON memory.turns (session_id, spoken_at, id);
CREATE INDEX turns_by_thread_in_speech_order ON memory.turns (thread_id, spoken_at, id);
CREATE INDEX turns_by_user ON memory.turns (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX threads_by_user ON memory.threads (user_id) WHERE user_id IS NOT NULL;

-- The crisis level of a turn's user speech, as the tools service classified it. Kept apart
-- from the turn because either may arrive first.
CREATE TABLE memory.turn_classifications (
    session_id      text NOT NULL,
    client_turn_id  text NOT NULL,
    thread_id       text NOT NULL,
    level           smallint NOT NULL CHECK (level BETWEEN 0 AND 3),
    reason          text NOT NULL,
    classified_at   timestamptz NOT NULL,
    PRIMARY KEY (session_id, client_turn_id)
);
CREATE INDEX turn_classifications_by_thread ON memory.turn_classifications (thread_id);

-- Semantic memory: what the user said about themselves, one copy per owner.
CREATE TABLE memory.facts (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_key          text NOT NULL,
    fact_text          text NOT NULL,
    fact_key           text NOT NULL,
    source_session_id  text,
    source_thread_id   text,
    stated_at          timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    search             tsvector GENERATED ALWAYS AS (to_tsvector('english', fact_text)) STORED,
    CONSTRAINT facts_once_per_owner UNIQUE (owner_key, fact_key)
);
CREATE INDEX facts_in_order ON memory.facts (owner_key, stated_at, id);
CREATE INDEX facts_search ON memory.facts USING gin (search);
CREATE INDEX facts_by_source_session ON memory.facts (source_session_id);
CREATE INDEX facts_by_source_thread ON memory.facts (source_thread_id);

-- Episodic memory: one summary per finished session.
CREATE TABLE memory.session_summaries (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_key          text NOT NULL,
    summary_text       text NOT NULL,
    themes             jsonb NOT NULL DEFAULT '[]'::jsonb,
    source_session_id  text NOT NULL UNIQUE,
    source_thread_id   text NOT NULL,
    ended_at           timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    search             tsvector GENERATED ALWAYS AS (to_tsvector('english', summary_text)) STORED
);
CREATE INDEX session_summaries_in_order ON memory.session_summaries (owner_key, ended_at, id);
CREATE INDEX session_summaries_search ON memory.session_summaries USING gin (search);
CREATE INDEX session_summaries_by_source_thread ON memory.session_summaries (source_thread_id);

-- Procedural memory: where each rule and the recall flag came from, and one copy per rule.
ALTER TABLE memory.response_rules
    ADD COLUMN rule_key text,
    ADD COLUMN source_session_id text,
    ADD COLUMN source_thread_id text,
    ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('english', rule_text)) STORED;
UPDATE memory.response_rules
SET rule_key = btrim(regexp_replace(lower(rule_text), '[^[:alnum:]]+', ' ', 'g'))
WHERE rule_key IS NULL;
DELETE FROM memory.response_rules newer
USING memory.response_rules older
WHERE newer.owner_key = older.owner_key AND newer.rule_key = older.rule_key
  AND newer.id > older.id;
ALTER TABLE memory.response_rules
    ALTER COLUMN rule_key SET NOT NULL,
    ADD CONSTRAINT response_rules_once_per_owner UNIQUE (owner_key, rule_key);
CREATE INDEX response_rules_in_order ON memory.response_rules (owner_key, created_at, id);
CREATE INDEX response_rules_by_source_session ON memory.response_rules (source_session_id);
CREATE INDEX response_rules_by_source_thread ON memory.response_rules (source_thread_id);

ALTER TABLE memory.owner_settings
    ADD COLUMN source_session_id text,
    ADD COLUMN source_thread_id text;

-- Sessions whose memory candidates were committed, so a second commit commits nothing.
CREATE TABLE memory.committed_sessions (
    session_id       text PRIMARY KEY,
    owner_key        text NOT NULL,
    thread_id        text NOT NULL,
    facts_committed  integer NOT NULL,
    summary_stored   boolean NOT NULL,
    committed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX committed_sessions_by_owner ON memory.committed_sessions (owner_key);
CREATE INDEX committed_sessions_by_thread ON memory.committed_sessions (thread_id);
