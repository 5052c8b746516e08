-- The statements PostgreSQL ran most often since the last pg_stat_statements_reset()
-- (scripts/bench.sh with BENCH_PG_STATEMENTS=1): where a scenario's database work goes,
-- and how many rows the calls returned (a read that comes back empty shows there).
SELECT calls,
       rows,
       round(mean_exec_time::numeric, 3) AS mean_ms,
       round(total_exec_time::numeric, 1) AS total_ms,
       left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS statement
FROM pg_stat_statements
WHERE query NOT LIKE '%pg_stat_statements%'
ORDER BY calls DESC
LIMIT 12;
