-- Drift per day of each feature against its reference (needs macros.sql).
-- A day's window profiles merge by adding their bin counts; the reference's counts are over
-- the same bins. Equals `mlmon drift --by day` (Lake.drift) for these methods.
WITH days AS (
    SELECT date AS day, reference_id, feature,
           mlmon_sum_counts(list(bin_counts)) AS counts,
           sum(count)::BIGINT AS count
    FROM read_parquet('lake/v1/profiles/**/*.parquet', hive_partitioning = true)
    WHERE model = 'risk'
    GROUP BY ALL
), refs AS (
    SELECT reference_id, feature, bin_counts AS counts
    FROM read_parquet('lake/v1/references/**/*.parquet', hive_partitioning = true)
    WHERE model = 'risk'
)
SELECT d.day, d.feature,
       mlmon_psi(r.counts, d.counts) AS psi,
       mlmon_jensen_shannon(r.counts, d.counts) AS jensen_shannon,
       mlmon_hellinger(r.counts, d.counts) AS hellinger,
       d.count
FROM days AS d JOIN refs AS r USING (reference_id, feature)
ORDER BY d.day, d.feature;
