"""Charging carts and the tablet fleet: inventory, check-out/in, the charge
planner, the cart link (HMAC-authenticated HTTP) and firmware rollout."""
