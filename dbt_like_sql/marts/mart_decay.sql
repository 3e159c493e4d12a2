-- Per suffix, over the last `window_days` days: the trend of its candidates. A suffix decays
-- gently when it loses at least `min_slope_pct` % of its names a day on average (least-squares
-- slope) and falls on at least 40 % of the days; a sudden drop is one day that loses
-- `drop_pct` % and `drop_names` names or more. Charts draw decaying suffixes as a band.
WITH params AS (
    SELECT 7 AS window_days, 1.0::DOUBLE AS min_slope_pct, 10.0::DOUBLE AS drop_pct, 5 AS drop_names
),
last_days AS (
    SELECT date FROM (SELECT DISTINCT date FROM mart_suffix_daily)
    ORDER BY date DESC LIMIT (SELECT window_days FROM params)
),
series AS (
    SELECT s.suffix, s.date, s.candidates,
           lag(s.candidates) OVER (PARTITION BY s.suffix ORDER BY s.date) AS before
    FROM mart_suffix_daily s JOIN last_days USING (date)
),
trend AS (
    SELECT suffix, min(date) AS window_start, max(date) AS window_end, count(*) AS days,
           regr_slope(candidates, date - DATE '2000-01-01') AS slope,
           avg(candidates) AS mean,
           count(*) FILTER (candidates < before) AS down_days,
           count(before) AS steps,
           max(before - candidates) AS worst_drop,
           max(100.0 * (before - candidates) / nullif(before, 0)) AS worst_drop_pct
    FROM series GROUP BY suffix
)
SELECT t.suffix, t.window_start, t.window_end, t.days,
       round(t.slope, 3) AS slope_per_day,
       round(100.0 * t.slope / nullif(t.mean, 0), 2) AS slope_pct_per_day,
       t.down_days, t.steps, t.worst_drop, round(t.worst_drop_pct, 2) AS worst_drop_pct,
       t.steps > 0 AND 100.0 * t.slope / nullif(t.mean, 0) <= -p.min_slope_pct
           AND t.down_days >= 0.4 * t.steps AS decaying,
       coalesce(t.worst_drop_pct >= p.drop_pct AND t.worst_drop >= p.drop_names, false)
           AS sudden_drop,
       p.window_days, p.min_slope_pct, p.drop_pct, p.drop_names
FROM trend t CROSS JOIN params p
