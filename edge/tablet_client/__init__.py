"""The Python tablet client: find the classroom hub, enrol the device, sign students in.

Used by tests, benchmarks and the tablet simulator (``python -m edge.tablet_client``);
it is also the reference for what a native tablet app must do.
"""
