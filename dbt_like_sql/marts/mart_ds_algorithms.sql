-- Per day: DS records by DNSKEY algorithm and digest type, and how many domains use each
-- (read from the candidates: the DS set comes from the parent zone).
SELECT date,
       split_part(ds, ' ', 2)::INTEGER AS algorithm,
       split_part(ds, ' ', 3)::INTEGER AS digest_type,
       count(*) AS ds_records,
       count(DISTINCT name) AS domains
FROM (SELECT date, name, unnest(ds) AS ds FROM lake.candidate_domains WHERE len(ds) > 0)
GROUP BY ALL
