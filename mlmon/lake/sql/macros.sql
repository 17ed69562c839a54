-- mlmon duckdb macros: merge and read the lake's mergeable profiles with plain SQL.
--
-- Paste this file into any duckdb >= 1.3 session (the CLI, DBeaver, a notebook), or print it
-- with `mlmon sql --macros`; `mlmon sql` and `Lake.sql` load it by themselves. It only defines
-- macros: no extension, no network, no mlmon install needed where it runs.
--
-- A profile row holds counts over the reference's bins (`bin_counts`) and a relative-error
-- quantile sketch (`sketch_*`, DDSketch-style log buckets). Merging profiles is adding them:
-- `mlmon_sum_counts(list(bin_counts))` adds bin counts over a GROUP BY, and
-- `mlmon_sketch_quantile(list(w), q)` merges the sketches of the rows `w` of a group and reads
-- quantile q. Results equal mlmon's (`Lake.drift`, `Lake.percentiles`) on the same rows.

-- Element-wise sum of equal-length count lists (the bins of merged profiles).
CREATE OR REPLACE MACRO mlmon_sum_counts(lists) AS (
    list_transform(
        range(1, len(lists[1]) + 1),
        lambda i: list_sum(list_transform(lists, lambda l: l[i]))
    )
);

-- Population stability index of `cur` against `ref` (two count lists over the same bins):
-- sum((q - p) * ln(q / p)) with proportions clipped below at 1e-4, as mlmon's "psi".
CREATE OR REPLACE MACRO mlmon_psi(ref, cur) AS (
    list_sum(list_transform(ref, lambda r, i:
        (greatest(cur[i] / list_sum(cur), 1e-4) - greatest(r / list_sum(ref), 1e-4))
        * ln(greatest(cur[i] / list_sum(cur), 1e-4) / greatest(r / list_sum(ref), 1e-4))
    ))
);

-- Jensen-Shannon distance (base 2, in [0, 1]), as mlmon's "jensen_shannon" and scipy's jensenshannon.
CREATE OR REPLACE MACRO mlmon_jensen_shannon(ref, cur) AS (
    sqrt(greatest(0.5 * list_sum(list_transform(ref, lambda r, i:
        CASE WHEN r > 0 THEN (r / list_sum(ref))
            * log2((r / list_sum(ref)) / (0.5 * (r / list_sum(ref) + cur[i] / list_sum(cur))))
            ELSE 0 END
        + CASE WHEN cur[i] > 0 THEN (cur[i] / list_sum(cur))
            * log2((cur[i] / list_sum(cur)) / (0.5 * (r / list_sum(ref) + cur[i] / list_sum(cur))))
            ELSE 0 END
    )), 0.0))
);

-- Hellinger distance sqrt(1 - sum(sqrt(p * q))), in [0, 1], as mlmon's "hellinger".
CREATE OR REPLACE MACRO mlmon_hellinger(ref, cur) AS (
    sqrt(greatest(1.0 - list_sum(list_transform(ref, lambda r, i:
        sqrt((r / list_sum(ref)) * (cur[i] / list_sum(cur)))
    )), 0.0))
);

-- Quantile q of the merged sketches of `rows`, a list of profile rows (structs with the
-- sketch_* columns), e.g. `mlmon_sketch_quantile(list(w), 0.95)` over `FROM ... AS w GROUP BY`.
-- Bucket i > 0 covers (gamma^(i-1), gamma^i] of |value - centre|, gamma = (1 + alpha) / (1 - alpha),
-- and reads as 2 gamma^i / (gamma + 1): within alpha (1%) of every value in it. The value at
-- rank floor(q (n - 1)) of the merged buckets, as mlmon's Lake.percentiles. NULL when empty.
CREATE OR REPLACE MACRO mlmon_sketch_quantile(rows, q) AS (
    WITH s AS (
        SELECT unnest(rows) AS w
    ), buckets AS (
        SELECT w.sketch_alpha AS alpha, coalesce(w.sketch_centre, 0) AS centre, 1 AS side,
               unnest(w.sketch_pos_index) AS idx, unnest(w.sketch_pos_count) AS n
        FROM s
        UNION ALL
        SELECT w.sketch_alpha, coalesce(w.sketch_centre, 0), -1,
               unnest(w.sketch_neg_index), unnest(w.sketch_neg_count)
        FROM s
        UNION ALL
        SELECT w.sketch_alpha, coalesce(w.sketch_centre, 0), 0, 0, w.sketch_zero
        FROM s WHERE w.sketch_zero > 0
    ), merged AS (
        SELECT side, idx, sum(n) AS n, any_value(alpha) AS alpha, any_value(centre) AS centre
        FROM buckets GROUP BY side, idx
    ), ranked AS (
        SELECT *, sum(n) OVER (ORDER BY side, side * idx ROWS UNBOUNDED PRECEDING) AS cum,
               sum(n) OVER () AS total,
               (1 + alpha) / (1 - alpha) AS gamma
        FROM merged WHERE n > 0
    )
    SELECT centre + side * (pow(gamma, idx) * (2.0 / (gamma + 1.0)))
    FROM ranked
    WHERE cum > floor(q * (total - 1))
    ORDER BY side, side * idx
    LIMIT 1
);

-- Small-count protection for counts you show or export (issue 19): the lake keeps exact
-- counts of the allow-listed categories, so merged periods drift exactly; before a categorical
-- `bin_counts` list (categories then __other__) leaves the reader role, fold every category
-- counted fewer than k times (but at least once) into the last entry, __other__, as mlmon's
-- reports do with k = 5: SELECT mlmon_shown_counts(mlmon_sum_counts(list(bin_counts)), 5).
CREATE OR REPLACE MACRO mlmon_shown_counts(counts, k) AS (
    list_transform(counts, lambda c, i:
        CASE WHEN i < len(counts) THEN (CASE WHEN c < k THEN 0 ELSE c END)
        ELSE c + coalesce(list_sum(list_transform(counts[1:len(counts) - 1],
                                                  lambda x: CASE WHEN x < k THEN x ELSE 0 END)), 0)
        END
    )
);
