-- Where a passage holds: a service of one country, or of one part of it (free NHS talking
-- therapies in England, a US treatment locator), answers a question about that place only.
-- NULL: general guidance that holds anywhere. A question that names another place is not
-- answered from it ("is therapy free in the US", or "in Scotland", from the NHS page on
-- England), and the place it names is no topic word.
ALTER TABLE tools.passages
    ADD COLUMN jurisdiction text CHECK (jurisdiction ~ '^[A-Z]{2}(-[A-Z0-9]{1,3})?$');

UPDATE tools.passages SET jurisdiction = 'GB-ENG' WHERE passage_id = 'nhs-talking-therapies';
UPDATE tools.passages SET jurisdiction = 'US'
WHERE passage_id IN ('us-find-help', 'us-treatment-locator');
