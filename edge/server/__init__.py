"""Running the hub: gunicorn (gthread workers) extended with readiness,
watchdog, mDNS advertising and clean shutdown."""
