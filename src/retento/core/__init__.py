"""What every domain uses, importing no domain: the outgoing HTTP client and its address policy."""
