-- Domains whose DANE outcome changed from one day to the next, with the new outcome's reasons:
-- a domain that stops passing is what its operators must hear about. A domain without a
-- verdict (no secure MX, or gone) counts as 'n/a'.
WITH verdicts AS (
    SELECT date, name, dane, dane_reasons FROM lake.dane_verdicts WHERE kind = 'domain'
),
days AS (
    SELECT date, lag(date) OVER (ORDER BY date) AS before
    FROM (SELECT DISTINCT date FROM lake.candidate_domains)
),
stayed_or_new AS (
    SELECT d.date, t.name, coalesce(y.dane, 'n/a') AS dane_before, t.dane AS dane_after,
           t.dane_reasons AS reasons
    FROM days d
    JOIN verdicts t ON t.date = d.date
    LEFT JOIN verdicts y ON y.date = d.before AND y.name = t.name
),
gone AS (
    SELECT d.date, y.name, y.dane AS dane_before, 'n/a' AS dane_after, [] AS reasons
    FROM days d
    JOIN verdicts y ON y.date = d.before
    ANTI JOIN verdicts t ON t.date = d.date AND t.name = y.name
)
SELECT * FROM (SELECT * FROM stayed_or_new UNION ALL SELECT * FROM gone)
WHERE dane_before <> dane_after
  AND date > (SELECT min(date) FROM days)  -- the first day has nothing to change from
