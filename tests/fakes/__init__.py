"""What the tests run against, in one place: fake upstreams (the strict Messages API in
`upstream`, the raw-socket `fault_upstream`, the `gated_upstream` that holds its stream),
`raw_server` and `raw_client` for exact bytes on the wire, `sse` stream events,
`servers` (an in-loop uvicorn, a real bridge process, a free port) and `factories`
(request and response bodies)."""
