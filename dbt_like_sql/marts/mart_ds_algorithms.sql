-- Per day: DS records by DNSKEY algorithm and digest type, and how many domains use each.
SELECT date,
       split_part(ds, ' ', 2)::INTEGER AS algorithm,
       split_part(ds, ' ', 3)::INTEGER AS digest_type,
       count(*) AS ds_records,
       count(DISTINCT name) AS domains
FROM (SELECT date, name, unnest(ds) AS ds FROM stg_domains)
GROUP BY ALL
