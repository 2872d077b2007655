-- Where a passage holds: a service of one country (free NHS talking therapies, a US treatment
-- locator) answers a question about that country only. NULL: general guidance that holds
-- anywhere. A question that names another country is not answered from it ("is therapy free
-- in the US" from the NHS page on England), and the place it names is no topic word.
ALTER TABLE tools.passages
    ADD COLUMN jurisdiction text CHECK (jurisdiction ~ '^[A-Z]{2}$');

UPDATE tools.passages SET jurisdiction = 'GB' WHERE passage_id = 'nhs-talking-therapies';
UPDATE tools.passages SET jurisdiction = 'US'
WHERE passage_id IN ('us-find-help', 'us-treatment-locator');
