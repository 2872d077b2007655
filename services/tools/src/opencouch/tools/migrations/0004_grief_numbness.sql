-- Shock and numbness are the first of the symptoms the NHS page on grief lists ("usually the
-- first reaction to loss"), so the grief passage names them and "is it normal to feel numb after
-- a loss?" is answered from it. In a search, a word no passage uses weighs the most unless it is
-- everyday English (it may be what the question is about): without this, "numb" would, and that
-- question would get no verified answer.
UPDATE tools.passages
SET keywords = keywords || ' numb numbness shock',
    summary = 'Grief brings many feelings, including shock and numbness at first, then sadness, anger, guilt and even relief, and they can come in waves. There is no right way or set time to grieve. Strong feelings often ease over time, though anniversaries and reminders can bring them back.',
    written_on = '2026-12-05'
WHERE passage_id = 'grief-feelings';
