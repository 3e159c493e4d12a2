-- Per day and suffix: signed domains, rank, and the day-over-day change, with the story a
-- reader would tell: a big jump, some loss, disabled (dropped to none), re-enabled, steady.
WITH days AS (
    SELECT date, suffix, signed, candidates,
           lag(signed) OVER (PARTITION BY suffix ORDER BY date) AS signed_before,
           max(signed) OVER (PARTITION BY suffix ORDER BY date
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS signed_max_before
    FROM mart_suffix_daily
)
SELECT date, suffix, signed, candidates,
       rank() OVER (PARTITION BY date ORDER BY signed DESC) AS rank,
       signed - coalesce(signed_before, signed) AS change,
       round(100.0 * (signed - signed_before) / nullif(signed_before, 0), 2) AS pct_change,
       CASE
           WHEN signed_before IS NULL THEN 'new'
           WHEN signed = 0 AND signed_before > 0 THEN 'disabled'
           WHEN signed > 0 AND signed_before = 0 AND signed_max_before > 0 THEN 're-enabled'
           WHEN signed - signed_before >= greatest(5, 0.2 * signed_before) THEN 'big jump'
           WHEN signed < signed_before THEN 'some loss'
           ELSE 'steady'
       END AS story
FROM days
