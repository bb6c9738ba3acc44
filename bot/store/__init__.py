"""The store: the only place that opens a database session (issue 19, "one door").

`bot.store.unit` holds `Store` (whose `tx()` opens a transaction) and `Tx` (locks in one
order, `apply` for every state move, `audit`, `refuse`); the other modules are named for
what they hold (runs, gates, leases, steps, reverts, env_locks, override_votes, replicas,
restore_points, audit_rows, …) and their queries take a Tx; `audit_chain` is the audit
trail's append (bot.audit re-exports it); `db` the engine and sessions, `models` the tables,
`migrate` and `migrations/` the schema. Some older ones still take a `db.Database` and open
their own transaction per call."""
