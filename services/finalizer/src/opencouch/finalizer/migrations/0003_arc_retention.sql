-- depends: 0002_arcs_reports_erasure
-- The retention job drops arcs a day after their session was finalized: it looks among the
-- finalizations that still hold one.
CREATE INDEX finalizations_holding_an_arc ON finalizer.finalizations (finalized_at)
    WHERE summary IS NOT NULL;
