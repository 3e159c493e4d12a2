-- The awards of the latest day: the suffix with the best improvement in % DNSSEC-problem-free
-- since the first day, suffixes with 100 % working DNSKEY, and the largest DANE provider.
WITH bounds AS (SELECT min(date) AS first_day, max(date) AS last_day FROM mart_suffix_daily),
improvement AS (
    SELECT l.suffix, round(l.pct_problem_free - f.pct_problem_free, 2) AS points
    FROM mart_suffix_daily l
    JOIN mart_suffix_daily f ON f.suffix = l.suffix
    JOIN bounds b ON l.date = b.last_day AND f.date = b.first_day
    WHERE l.pct_problem_free IS NOT NULL AND f.pct_problem_free IS NOT NULL
),
perfect AS (
    SELECT s.suffix FROM mart_suffix_daily s JOIN bounds b ON s.date = b.last_day
    WHERE s.pct_working_dnskey = 100
),
largest AS (
    SELECT p.provider, p.dane_domains FROM mart_dane_providers p
    JOIN bounds b ON p.date = b.last_day
)
SELECT 'best improvement in % DNSSEC-problem-free' AS award, suffix AS winner,
       points AS value, (SELECT last_day FROM bounds) AS date
FROM (SELECT * FROM improvement ORDER BY points DESC, suffix LIMIT 1)
UNION ALL
SELECT '100 % working DNSKEY', suffix, 100, (SELECT last_day FROM bounds) FROM perfect
UNION ALL
SELECT 'largest DANE provider', provider, dane_domains, (SELECT last_day FROM bounds)
FROM (SELECT * FROM largest ORDER BY dane_domains DESC, provider LIMIT 1)
