-- Alerts firing now: each (model, rule, feature)'s latest record says "firing".
-- Plain SQL, no macro needed.
SELECT model, rule, feature, severity, raised_at, window_start, window_end, value, threshold,
       message
FROM (
    SELECT *, row_number() OVER (
               PARTITION BY model, rule, feature ORDER BY raised_at DESC, window_end DESC
           ) AS latest
    FROM read_parquet('lake/v1/alerts/**/*.parquet', hive_partitioning = true)
)
WHERE latest = 1 AND state = 'firing'
ORDER BY model, rule, feature;
