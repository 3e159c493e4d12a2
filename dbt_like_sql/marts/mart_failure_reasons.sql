-- Per day, status and reason: how many domains got that reason (a domain can have several).
SELECT date, dnssec, reason, sum(domains)::BIGINT AS domains
FROM (SELECT date, dnssec, unnest(reasons) AS reason, domains FROM stg_domain_counts)
GROUP BY ALL
