"""Wire formats shared by the hub agent and the district services (no ``edge`` imports)."""
