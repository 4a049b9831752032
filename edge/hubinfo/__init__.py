"""What a tablet asks first: which hub is this (it checks the id it discovered)."""
