-- The names a source listed for the first time on a day (few: new registrations, and the
-- whole list on an import day): what explains an import spike.
SELECT date, name, suffix, source
FROM stg_source_names
WHERE first_seen = date
