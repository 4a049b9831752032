"""Live events (Server-Sent Events) that reach a listener in any worker process."""
