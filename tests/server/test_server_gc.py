"""The server hides its start-up objects from the garbage collector (serve.freeze_startup_objects)."""

import gc

from pymail.server.serve import freeze_startup_objects


def test_startup_objects_are_frozen():
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 10_000      # modules, classes, ... of this process
    finally:
        gc.unfreeze()                               # leave the test process as it was
