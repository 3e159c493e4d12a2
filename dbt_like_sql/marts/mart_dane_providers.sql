-- Per day and provider (the zone of a DANE MX host): its TLSA-protected MX hosts and the
-- DANE-enabled domains whose primary MX hosts it runs.
WITH hosts AS (
    SELECT date, provider, count(*) AS tlsa_hosts
    FROM stg_mx_hosts WHERE dnssec = 'secure' AND tlsa_records > 0
    GROUP BY date, provider
),
served AS (
    SELECT d.date, h.provider, count(DISTINCT d.name) AS dane_domains
    FROM (SELECT date, name, unnest(primaries) AS host FROM lake.dane_verdicts
          WHERE kind = 'domain' AND dane = 'pass') d
    JOIN stg_mx_hosts h ON h.date = d.date AND h.host = d.host
    GROUP BY d.date, h.provider
)
SELECT h.date, h.provider, h.tlsa_hosts, coalesce(s.dane_domains, 0) AS dane_domains
FROM hosts h LEFT JOIN served s USING (date, provider)
WHERE coalesce(s.dane_domains, 0) > 0
