DROP INDEX CONCURRENTLY IF EXISTS tokens_session_live_idx;
