"""drf-scale: keep Django REST Framework services fast under high traffic."""

__version__ = "0.1.0"
