-- Every day-over-day step in the number of candidates, in total (scope '*') and per suffix;
-- `is_spike` marks the jumps, with what explains each: names first listed that day by a source that was imported for the first
-- time or again after a gap (mart_import_events). A jump is at least `min_names` names and
-- `min_pct` % of the day before; it is explained when such names make up half of it or more.
WITH params AS (SELECT 5 AS min_names, 5.0::DOUBLE AS min_pct),
days AS (SELECT DISTINCT date FROM mart_daily_totals),
scopes AS (SELECT DISTINCT suffix AS scope FROM mart_suffix_daily UNION SELECT '*'),
counts AS (
    SELECT date, '*' AS scope, candidates FROM mart_daily_totals
    UNION ALL
    SELECT date, suffix, candidates FROM mart_suffix_daily
),
dense AS (
    SELECT d.date, s.scope, coalesce(c.candidates, 0) AS candidates
    FROM days d CROSS JOIN scopes s
    LEFT JOIN counts c ON c.date = d.date AND c.scope = s.scope
),
steps AS (
    SELECT date, scope, candidates AS after,
           lag(candidates) OVER (PARTITION BY scope ORDER BY date) AS before
    FROM dense
),
firsts AS (  -- names first listed on the day of their source's import event
    SELECT n.date, n.name, n.suffix, n.source
    FROM stg_source_firsts n JOIN mart_import_events e USING (date, source)
),
explained AS (
    SELECT date, '*' AS scope, count(DISTINCT name) AS names,
           list_sort(list(DISTINCT source)) AS sources
    FROM firsts GROUP BY date
    UNION ALL
    SELECT date, suffix, count(DISTINCT name), list_sort(list(DISTINCT source))
    FROM firsts GROUP BY date, suffix
)
SELECT s.date, s.scope, s.before, s.after, s.after - s.before AS change,
       round(100.0 * (s.after - s.before) / nullif(s.before, 0), 2) AS pct_change,
       coalesce(x.names, 0) AS explained_names,
       coalesce(x.sources, []) AS explained_by,
       s.after - s.before >= p.min_names
           AND (s.before = 0 OR 100.0 * (s.after - s.before) / s.before >= p.min_pct) AS is_spike,
       coalesce(x.names, 0) * 2 >= s.after - s.before AS explained,
       p.min_names, p.min_pct
FROM steps s CROSS JOIN params p
LEFT JOIN explained x ON x.date = s.date AND x.scope = s.scope
WHERE s.before IS NOT NULL
