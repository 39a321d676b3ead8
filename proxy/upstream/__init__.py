"""The upstream: one HTTP client for the Messages API (aiohttp on the network, `demo:`
in memory), its pool, retries, header policy and answers."""
