"""Stand-ins for the services the bot talks to, shared by the tests and the benchmarks
(bench/ may not import tests/: issue 19). Test infrastructure: not part of the package."""
