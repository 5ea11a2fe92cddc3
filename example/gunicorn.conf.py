"""gunicorn settings of the reference service (gunicorn reads this file from example/)."""

from drf_scale.db import post_fork  # noqa: F401 - each worker opens its own connections
