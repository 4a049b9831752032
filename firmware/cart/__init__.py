# The cart controller application. VERSION is what telemetry reports and what an
# OTA bundle's manifest names; tools/bundle.py reads it from here.
VERSION = "1.0.0"
