"""What the HTTP APIs share: problem responses, pagination, method routing."""
