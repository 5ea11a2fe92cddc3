"""The DRF_SCALE settings dict with its defaults, read like DRF's api_settings.

    DRF_SCALE = {"SERVER_TIMING": True}

Read values as attributes of ``scale_settings``; unknown keys are an error so
typos do not pass silently.
"""

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Add the Server-Timing header to every response.
    "SERVER_TIMING": True,
}


class ScaleSettings:
    """Attribute access to DRF_SCALE with defaults; reloaded on setting_changed."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        configured = getattr(settings, "DRF_SCALE", {})
        unknown = set(configured) - set(self.defaults)
        if unknown:
            raise RuntimeError(f"Unknown DRF_SCALE settings: {', '.join(sorted(unknown))}")
        return configured

    def __getattr__(self, name: str) -> Any:
        if name not in self.defaults:
            raise AttributeError(f"Invalid drf-scale setting: {name!r}")
        if name not in self._cache:
            self._cache[name] = self.user_settings.get(name, self.defaults[name])
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()


scale_settings = ScaleSettings(DEFAULTS)


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "DRF_SCALE":
        scale_settings.reload()


setting_changed.connect(_reload)
