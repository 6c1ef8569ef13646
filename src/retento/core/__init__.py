"""What every domain uses, importing no domain: the outgoing HTTP client and its address policy, the worker, and
the durable-work primitive (`work`)."""
