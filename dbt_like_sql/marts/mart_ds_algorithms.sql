-- Per day: DS records by DNSKEY algorithm and digest type, and how many domains use each
-- (read from the candidates: the DS set comes from the parent zone). Domains are counted
-- together by the kinds of their DS records first, so only those few groups are split apart.
WITH kinds AS (
    SELECT date,
           list_transform(ds, lambda r: {'algorithm': split_part(r, ' ', 2)::INTEGER,
                                         'digest_type': split_part(r, ' ', 3)::INTEGER}) AS kinds,
           count(*) AS domains
    FROM lake.candidate_domains
    WHERE len(ds) > 0
    GROUP BY ALL
),
records AS (
    SELECT date, k.algorithm, k.digest_type, sum(domains) AS ds_records
    FROM (SELECT date, unnest(kinds) AS k, domains FROM kinds)
    GROUP BY ALL
),
users AS (  -- a domain with two records of one kind uses it once
    SELECT date, k.algorithm, k.digest_type, sum(domains) AS domains
    FROM (SELECT date, unnest(list_distinct(kinds)) AS k, domains FROM kinds)
    GROUP BY ALL
)
SELECT date, algorithm, digest_type, ds_records::BIGINT AS ds_records, domains::BIGINT AS domains
FROM records JOIN users USING (date, algorithm, digest_type)
