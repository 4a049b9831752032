"""The charging-cart controller: MicroPython application (``cart/``), the
device's boot loader (``loader.py``) and host tools (``tools/``).

Nothing here imports the rest of the repository: it runs on the cart. The hub
talks to it only over the HTTP protocol whose shapes live in
``cart/protocol.py``, a module both sides load and test.
"""
