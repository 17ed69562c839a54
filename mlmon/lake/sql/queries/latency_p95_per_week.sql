-- Latency p50, p95 and p99 per week (weeks start on Monday, UTC; needs macros.sql).
-- Each row's sketch is merged into its week's; quantiles are within 1% of the exact ones.
-- Equals `mlmon percentiles latency_ms --by week` (Lake.percentiles).
SELECT date_trunc('week', date)::DATE AS week,
       mlmon_sketch_quantile(list(w), 0.50) AS p50,
       mlmon_sketch_quantile(list(w), 0.95) AS p95,
       mlmon_sketch_quantile(list(w), 0.99) AS p99,
       sum(count)::BIGINT AS count
FROM read_parquet('lake/v1/latency/**/*.parquet', hive_partitioning = true) AS w
WHERE model = 'risk' AND feature = 'latency_ms'
GROUP BY week
ORDER BY week;
