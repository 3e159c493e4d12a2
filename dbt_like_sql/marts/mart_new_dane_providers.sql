-- Every DANE provider with the first day it served a DANE-enabled domain, its size that day,
-- and its size on the latest day.
WITH firsts AS (
    SELECT provider, min(date) AS first_seen FROM mart_dane_providers GROUP BY provider
),
latest AS (SELECT max(date) AS date FROM mart_dane_providers)
SELECT f.provider, f.first_seen,
       t.dane_domains AS dane_domains_first_day, t.tlsa_hosts AS tlsa_hosts_first_day,
       coalesce(n.dane_domains, 0) AS dane_domains_now, coalesce(n.tlsa_hosts, 0) AS tlsa_hosts_now
FROM firsts f
JOIN mart_dane_providers t ON t.provider = f.provider AND t.date = f.first_seen
LEFT JOIN mart_dane_providers n ON n.provider = f.provider AND n.date = (SELECT date FROM latest)
