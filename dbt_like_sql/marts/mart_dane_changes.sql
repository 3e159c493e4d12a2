-- Domains whose DANE outcome changed from one day to the next, with the new outcome's reasons:
-- a domain that stops passing is what its operators must hear about. A domain without a
-- verdict (no secure MX, or gone) counts as 'n/a'. Every change has a verdict other than 'n/a'
-- on one side of it, so only those few verdicts are joined day to day.
WITH verdicts AS (
    SELECT date, name, dane, dane_reasons FROM lake.dane_verdicts WHERE kind = 'domain'
),
judged AS (SELECT * FROM verdicts WHERE dane <> 'n/a'),
days AS (
    SELECT date, lag(date) OVER (ORDER BY date) AS before
    FROM (SELECT DISTINCT date FROM lake.candidate_domains)
),
judged_now AS (  -- today's outcome is not 'n/a': yesterday's is what it was, or 'n/a'
    SELECT d.date, t.name, coalesce(y.dane, 'n/a') AS dane_before, t.dane AS dane_after,
           t.dane_reasons AS reasons
    FROM days d
    JOIN judged t ON t.date = d.date
    LEFT JOIN judged y ON y.date = d.before AND y.name = t.name
),
judged_before AS (  -- yesterday's outcome was not 'n/a', today's is: with today's reasons
    SELECT d.date, y.name, y.dane AS dane_before, 'n/a' AS dane_after,
           CASE WHEN t.name IS NULL THEN [] ELSE t.dane_reasons END AS reasons
    FROM days d
    JOIN judged y ON y.date = d.before
    ANTI JOIN judged n ON n.date = d.date AND n.name = y.name
    LEFT JOIN verdicts t ON t.date = d.date AND t.name = y.name
)
SELECT * FROM (SELECT * FROM judged_now UNION ALL SELECT * FROM judged_before)
WHERE dane_before <> dane_after
  AND date > (SELECT min(date) FROM days)  -- the first day has nothing to change from
