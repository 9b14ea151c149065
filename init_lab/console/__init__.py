"""The terminal: live progress while a sweep runs (``progress``) and the commands' tables (``tables``), in the
colours of ``styles``. Nothing here imports TensorFlow."""
