-- One row per imported feed (a zone file, a transfer, a name list) and day, with its counts.
SELECT date, source, kind, feed, zone, status, error, sha256, bytes, lines, records, blank_lines,
       bad, imported_at, seconds
FROM lake.zone_imports
