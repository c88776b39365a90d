"""VTEX app-key authentication: two headers on every request, nothing to refresh."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests
from requests.auth import AuthBase

from etl.http import reveal

if TYPE_CHECKING:
    from etl.config import Secret

__all__ = ["AppKeyAuth"]


class AppKeyAuth(AuthBase):
    """Adds ``X-VTEX-API-AppKey`` and ``X-VTEX-API-AppToken`` (VTEX API-key authentication).

    Args:
        app_key: the key (an identifier, shown in reprs).
        app_token: the token, an ``etl.config.Secret`` or a ``str``; never shown.
    """

    def __init__(self, app_key: str, app_token: Secret | str) -> None:
        if not app_key:
            raise ValueError("app_key must not be empty")
        self.app_key = app_key
        self._app_token = app_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-VTEX-API-AppKey"] = self.app_key
        request.headers["X-VTEX-API-AppToken"] = reveal(self._app_token)
        return request

    def __repr__(self) -> str:
        return f"AppKeyAuth(app_key={self.app_key!r}, app_token='***')"
