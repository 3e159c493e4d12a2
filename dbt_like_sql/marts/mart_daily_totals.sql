-- Per day: the headline numbers. DANE providers are the distinct zones of MX hosts that
-- have secure TLSA records and serve at least one DANE-enabled domain.
WITH domains AS (
    SELECT date,
           count(*) AS candidates,
           count(*) FILTER (signed) AS signed,
           count(*) FILTER (dnssec = 'secure' AND len(mx) > 0) AS secure_mx,
           count(*) FILTER (dane = 'pass') AS dane_domains
    FROM stg_domains GROUP BY date
),
providers AS (
    SELECT date, count(DISTINCT provider) AS dane_providers, sum(tlsa_hosts) AS tlsa_hosts
    FROM mart_dane_providers GROUP BY date
)
SELECT d.date, d.candidates, d.signed, d.secure_mx, d.dane_domains,
       coalesce(p.dane_providers, 0) AS dane_providers,
       coalesce(p.tlsa_hosts, 0)::BIGINT AS tlsa_hosts,
       round(100.0 * d.dane_domains / nullif(d.secure_mx, 0), 2) AS pct_dane_of_secure_mx
FROM domains d LEFT JOIN providers p USING (date)
