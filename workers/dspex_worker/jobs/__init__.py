"""Jobs: long-running work with a record in KV `dspex_jobs` (store.py) and, while this worker runs one, its lease,
progress events and cancellation (run.py). One model for every kind (job.schema.json); this worker runs the
`optimize` kind (ops/compile)."""
