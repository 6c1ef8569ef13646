"""One module per provider: the shapes of its webhook bodies (what Retento reads of them) and `parse`, which turns
a body into inbox events (`retento.inbox.inbound`). A body of another shape is a DomainError naming the field."""
