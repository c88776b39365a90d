"""The console's WSGI application: routes, authentication, CSRF checks, pages and JSON.

=====================================  =========  ==============================================
path                                   method     what
=====================================  =========  ==============================================
``/runs``                              GET        runs, newest first (``?status=``, ``?limit=``)
``/runs``                              POST       start a sync (form) -> 303 to the run
``/runs/new``                          GET        the start form
``/runs/{id}``                         GET        a run: progress, chunks, rejects by reason
``/runs/{id}/cancel|resume|replay``    POST       the engine's action (form) -> 303
``/runs/{id}/rejects.csv``             GET        every reject of the run (redacted)
``/cursors``, ``/realtime``            GET        incremental cursors and lag; a day's webhooks
``/api/...``                           GET        the same data as JSON (``/api/runs``,
                                                  ``/api/runs/{id}``, ``/api/runs/{id}/rejects``,
                                                  ``/api/cursors``, ``/api/realtime``)
``/api/runs``, ``/api/runs/{id}/...``  POST       start / cancel / resume / replay (JSON body)
``/metrics``                           GET        Prometheus text (``etl.console.metrics``)
``/healthz``, ``/readyz``              GET        liveness; readiness (PostgreSQL and Redis)
=====================================  =========  ==============================================

Everything but ``/healthz`` and ``/readyz`` needs the Basic credentials (``etl.console.auth``);
forms carry a CSRF token and cross-site writes are refused (``etl.console.csrf``). Pages are
rendered on the server (Jinja2, autoescaped) and refresh themselves while a run they show is
active; there is no JavaScript.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from etl.console import views
from etl.console.actions import ActionError
from etl.console.auth import BasicAuth, challenge
from etl.console.csrf import FIELD, CsrfTokens, cross_site
from etl.console.metrics import CONTENT_TYPE, Scrape
from etl.console.present import run_view
from etl.errors import ConfigError, EtlError

__all__ = ["ConsoleApp"]

log = logging.getLogger(__name__)

ACTIONS = "any(cancel, resume, replay)"
_URLS = Map(
    [
        Rule("/", endpoint="home", methods=["GET"]),
        Rule("/runs", endpoint="runs", methods=["GET"]),
        Rule("/runs", endpoint="start", methods=["POST"]),
        Rule("/runs/new", endpoint="new_run", methods=["GET"]),
        Rule("/runs/<int:run_id>", endpoint="run", methods=["GET"]),
        Rule(f"/runs/<int:run_id>/<{ACTIONS}:action>", endpoint="act", methods=["POST"]),
        Rule("/runs/<int:run_id>/rejects.csv", endpoint="rejects_csv", methods=["GET"]),
        Rule("/cursors", endpoint="cursors", methods=["GET"]),
        Rule("/realtime", endpoint="realtime", methods=["GET"]),
        Rule("/api/runs", endpoint="api:runs", methods=["GET"]),
        Rule("/api/runs", endpoint="api:start", methods=["POST"]),
        Rule("/api/runs/<int:run_id>", endpoint="api:run", methods=["GET"]),
        Rule(f"/api/runs/<int:run_id>/<{ACTIONS}:action>", endpoint="api:act", methods=["POST"]),
        Rule("/api/runs/<int:run_id>/rejects", endpoint="api:rejects", methods=["GET"]),
        Rule("/api/cursors", endpoint="api:cursors", methods=["GET"]),
        Rule("/api/realtime", endpoint="api:realtime", methods=["GET"]),
        Rule("/metrics", endpoint="metrics", methods=["GET"]),
        Rule("/healthz", endpoint="health", methods=["GET"]),
        Rule("/readyz", endpoint="ready", methods=["GET"]),
    ],
    strict_slashes=False,
)
_OPEN = frozenset({"health", "ready"})
_SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
}


class ConsoleApp:
    """The console.

    Args:
        services: the store, engine and Redis (``views.Services``).
        auth: the accepted credentials; ``None`` serves without authentication (loopback only,
            the CLI makes sure).
        csrf: the form token issuer (one key for every worker process).
        scrape: the ``/metrics`` collector.
    """

    def __init__(
        self,
        services: views.Services,
        auth: BasicAuth | None,
        csrf: CsrfTokens,
        scrape: Callable[[], Scrape],
    ) -> None:
        self.services = services
        self.auth = auth
        self.csrf = csrf
        self.scrape = scrape
        self.templates = Environment(
            loader=PackageLoader("etl.console", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(when=_when, ago=_ago)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        response = self.respond(Request(environ))
        response.headers.extend(
            (name, value) for name, value in _SECURITY_HEADERS.items()
            if name not in response.headers
        )  # fmt: skip
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        try:
            endpoint, args = _URLS.bind_to_environ(request.environ).match()
            user = "anonymous"
            if endpoint not in _OPEN and self.auth is not None:
                found = self.auth.user(request)
                if found is None:
                    return challenge()
                user = found
            if request.method == "POST":
                self._check_write(request, user, api=str(endpoint).startswith("api:"))
            return self._dispatch(str(endpoint), request, dict(args), user)
        except HTTPException as error:
            return self._error(request, error.code or 500, error.description or error.name)
        except ActionError as error:
            return self._error(request, 409, str(error))
        except ConfigError as error:
            return self._error(request, 503, f"the console cannot do that: {error}")
        except EtlError as error:  # the broker or a server is down: say so, keep serving
            return self._error(request, 503, str(error))

    # -- dispatch ------------------------------------------------------------------------------

    def _dispatch(
        self, endpoint: str, request: Request, args: dict[str, Any], user: str
    ) -> Response:
        services = self.services
        if endpoint == "home":
            return redirect("/runs", 303)
        if endpoint == "health":
            return Response("ok\n", mimetype="text/plain")
        if endpoint == "ready":
            return self._readiness()
        if endpoint == "metrics":
            return Response(self.scrape().render(), content_type=CONTENT_TYPE)
        if endpoint == "rejects_csv":
            return views.rejects_csv(request, services, args)
        if endpoint == "api:rejects":
            return _json({"rejects": list(views.rejects_data(request, services, args))})
        if endpoint in ("start", "api:start"):
            api = endpoint == "api:start"
            try:
                run, notice = views.start(request, services, _fields(request, api))
            except ActionError as error:
                if api:
                    raise BadRequest(str(error)) from None
                return self._page(request, user, *self._form_again(request, str(error)), 400)
            return self._done(api, run.id, notice, 201)
        if endpoint in ("act", "api:act"):
            run, notice = views.act(services, args["run_id"], args["action"])
            return self._done(endpoint == "api:act", run.id, notice, 200)
        name = endpoint.removeprefix("api:")
        view = views.VIEWS.get(name)
        if view is None:
            raise NotFound()
        template, data = view(request, services, args)
        if endpoint.startswith("api:"):
            return _json(data)
        return self._page(request, user, template, data)

    def _done(self, api: bool, run_id: int, notice: str, status: int) -> Response:
        if api:
            run = self.services.store().runs.get(run_id)
            return _json({"notice": views.NOTICES[notice], "run": run_view(run)}, status)
        return redirect(f"/runs/{run_id}?notice={notice}", 303)

    def _form_again(self, request: Request, error: str) -> tuple[str, dict[str, Any]]:
        template, data = views.new_run_page(request, self.services, {})
        data["form"] = {**data["form"], **request.form.to_dict()}
        data["error"] = error
        return template, data

    def _check_write(self, request: Request, user: str, api: bool) -> None:
        if cross_site(request):
            raise Forbidden("cross-site request refused")
        if api:
            if request.mimetype != "application/json":
                raise BadRequest("send application/json")
            return
        if not self.csrf.check(user, request.form.get(FIELD, "")):
            raise Forbidden("the form expired or did not come from this console: reload the page")

    def _readiness(self) -> Response:
        problems = []
        try:
            with self.services.store().db.transaction() as cur:
                cur.execute("SELECT 1")
        except Exception as error:  # any failure means not ready
            problems.append(f"postgresql: {type(error).__name__}")
        try:
            self.services.redis().ping()
        except Exception as error:
            problems.append(f"redis: {type(error).__name__}")
        if problems:
            return Response("; ".join(problems) + "\n", status=503, mimetype="text/plain")
        return Response("ok\n", mimetype="text/plain")

    # -- rendering -----------------------------------------------------------------------------

    def _page(
        self, request: Request, user: str, template: str, data: dict[str, Any], status: int = 200
    ) -> Response:
        notice = views.NOTICES.get(request.args.get("notice", ""))
        html = self.templates.get_template(template).render(
            **data, user=user, csrf_field=FIELD, csrf_token=self.csrf.issue(user), notice=notice,
            path=request.path,
        )  # fmt: skip
        return Response(html, status=status, mimetype="text/html")

    def _error(self, request: Request, status: int, message: str) -> Response:
        if request.path.startswith("/api/"):
            return _json({"error": message}, status)
        if status >= 500:
            log.warning("console: %s %s -> %d: %s", request.method, request.path, status, message)
        html = self.templates.get_template("error.html").render(
            status=status, message=message, user=None, path=request.path, notice=None
        )
        return Response(html, status=status, mimetype="text/html")


def _fields(request: Request, api: bool) -> dict[str, str]:
    if not api:
        return request.form.to_dict()
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return {key: str(value) for key, value in body.items()}


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str), status=status, mimetype="application/json")


def _when(value: str | datetime | None) -> str:
    if not value:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
