-- Per day, status and reason: how many domains got that reason (a domain can have several).
SELECT date, dnssec, reason, count(*) AS domains
FROM (SELECT date, dnssec, unnest(reasons) AS reason FROM stg_domains)
GROUP BY ALL
