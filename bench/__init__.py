"""Scale benchmark for prepull-agent: a synthetic OpenShift AI estate and the timings of
listing it (the floor), of `prepull-agent once --dry-run`, and of a naive typed client.

    python -m bench --preset large --json out.json     # see bench/README.md

Modules: `generate` (the estate, pure), `load` (fills a cluster with it, in parallel),
`run` (the benchmark), `naive` (the typed-client baseline, run as a child process),
`growth` (a table over several result files).
"""
