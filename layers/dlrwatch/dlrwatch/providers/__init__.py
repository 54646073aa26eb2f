"""The provider registry: adding a provider means adding its module here, and nothing else.

A module names itself (``NAME``), maps raw statuses (``normalize``) and, when providers push to a route of
its own, declares the route's name (``CALLBACK``) and its parser (``parse_callback``).
"""

from __future__ import annotations

from types import ModuleType

from dlrwatch.providers import bulksms, bulksms_eapi, sevenio

REGISTRY: tuple[ModuleType, ...] = (sevenio, bulksms_eapi, bulksms)

PROVIDERS: dict[str, ModuleType] = {module.NAME: module for module in REGISTRY}

CALLBACKS: dict[str, ModuleType] = {module.CALLBACK: module for module in REGISTRY if hasattr(module, "CALLBACK")}
