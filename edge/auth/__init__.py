"""Who is asking: sessions, device tokens, roles and brute-force limits."""
