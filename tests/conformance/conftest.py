"""The vendored Paho code is run through ``adapter.py``, never collected itself (its
``client_test.py`` matches pytest's ``*_test.py`` and imports ``mqtt`` as a top-level package)."""

collect_ignore = ["paho"]
