"""drf-scale: keep Django REST Framework services fast under high traffic."""

__version__ = "0.2.0"
