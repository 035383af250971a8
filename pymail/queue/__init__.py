"""pymail.queue — the durable mail queue, local and remote delivery, bounces, admin functions.

``open_queue(config, store, directory)`` → ``Queue``; the SMTP server calls ``queue.accept``;
``queue.start()`` runs the delivery runner; ``pymail.queue.admin`` has list/show/flush/hold/
release/delete for the ``pymail queue`` command.
"""


def open_queue(*args, **kwargs):
    from pymail.queue.service import open_queue as _open

    return _open(*args, **kwargs)
