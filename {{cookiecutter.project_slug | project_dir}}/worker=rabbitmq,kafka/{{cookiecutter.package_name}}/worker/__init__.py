"""The event worker: consumes the service's item events and relays its outbox to the broker.

`python -m` or the management command builds a `WorkerConfig` and a `Store` and calls
`app.run`. See README.md, "Worker".
"""
