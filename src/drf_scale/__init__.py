"""drf-scale: keep Django REST Framework services fast under high traffic.

Import from the submodules (``drf_scale.mixins``, ``drf_scale.cache``, ...): this package
re-exports nothing, because Django imports it first when loading ``INSTALLED_APPS`` and
most submodules import DRF, which reads settings at import, costs about a second, and (for
``scale_audit``) raises ``AppRegistryNotReady`` before the apps are ready.
"""

__all__ = ["__version__"]

__version__ = "0.2.0"
