"""Keep personal data and secrets out of logs, error texts and stored payloads.

Two tools, one set of rules:

* ``redact_payload`` masks a JSON-like record by key (e-mail, phone, document, names, addresses,
  tokens, API keys ...) and scrubs every other string with ``redact_text``. Rejected records are
  stored and dry runs printed this way.
* ``redact_text`` masks what is recognisable in free text: e-mail addresses, ``Bearer`` tokens,
  ``Authorization`` headers, values of token / API-key / password / secret parameters and headers
  (``X-VTEX-API-AppToken: ...``, ``apiKey=...``), and every value passed to ``register_secret``.
  ``install_log_redaction`` applies it to every log record through a ``logging.Filter``.

``fingerprint`` gives a stable, seeded hash to correlate records without keeping the value.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "SENSITIVE_KEYS",
    "RedactingFilter",
    "fingerprint",
    "install_log_redaction",
    "redact_email",
    "redact_payload",
    "redact_phone",
    "redact_text",
    "register_secret",
]

MASK = "***"

SENSITIVE_KEYS = frozenset(
    {
        # contact
        "email", "emails", "useremail", "clientemail", "customeremail",
        "phone", "phones", "homephone", "cellphone", "businessphone", "mobile", "mobilephone",
        "telephone", "phonenumber",
        # identity
        "document", "documents", "corporatedocument", "stateinscription", "cpf", "cnpj", "rg",
        "name", "firstname", "lastname", "fullname", "surname", "nickname", "receivername",
        "birthdate", "dateofbirth",
        # address
        "address", "addresses", "selectedaddresses", "availableaddresses", "street",
        "complement", "neighborhood", "postalcode", "zipcode", "geocoordinates", "ip",
        "ipaddress",
        # credentials
        "token", "accesstoken", "refreshtoken", "apptoken", "xvtexapiapptoken", "apikey",
        "xsyneriseapikey", "password", "secret", "clientsecret", "authorization", "cookie",
        "vtexidclientautcookie",
    }
)  # fmt: skip
"""Keys (lower case, without ``-``, ``_``, ``.`` or spaces) whose whole value is masked."""

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
# A separator between a name and its value: ``=``, ``: ``, ``": "``, ``': b'`` (repr of bytes).
_SEP = r"""(\s*["']?\s*[:=]\s*(?:(?-i:b)?["'])?\s*)"""
_AUTHORIZATION = re.compile(r"(?i)\b(authorization)" + _SEP + r"""([^"'\r\n,;}]+)""")
_NAMED_SECRET = re.compile(
    r"(?i)\b([\w-]*?(?:token|api[-_]?key|password|passwd|secret))" + _SEP + r"""([^\s"'&,;}\]]+)"""
)
_KEY_JUNK = re.compile(r"[\s_.-]")
_TASK_NAME = re.compile(r"(?:etl|celery)(?:\.\w+)+")
"""A Celery task name (``etl.process_chunk``): Celery logs it under the key ``name``, which
would otherwise be masked as a person's name."""

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_secrets_pattern: re.Pattern[str] | None = None


def redact_email(value: str) -> str:
    """``john.doe@x.com`` -> ``j***@x.com``: the domain stays (useful for debugging), the person
    does not. Anything without an ``@`` is masked entirely."""
    local, at, domain = value.rpartition("@")
    if not at:
        return MASK
    return f"{local[:1]}{MASK}@{domain}"


def redact_phone(value: str) -> str:
    """Keep only the last two digits: ``+55 11 98765-4321`` -> ``***21``."""
    digits = [char for char in value if char.isdigit()]
    return MASK + "".join(digits[-2:]) if len(digits) >= 4 else MASK


def register_secret(value: str) -> None:
    """Mask ``value`` wherever ``redact_text`` runs (log records included). Empty is ignored."""
    global _secrets_pattern
    if not value:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first, so a secret containing another one is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_pattern = re.compile("|".join(re.escape(secret) for secret in ordered))


def redact_text(text: str) -> str:
    """Mask registered secrets, credentials and e-mail addresses in free text."""
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _AUTHORIZATION.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m[1]} {MASK}", text)
    text = _NAMED_SECRET.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    return _EMAIL.sub(lambda m: redact_email(m[0]), text)


def redact_payload(obj: Any, keys: Iterable[str] = SENSITIVE_KEYS) -> Any:
    """A deep copy of ``obj`` with sensitive values masked.

    Values under a sensitive key (compared lower case, ignoring ``-``, ``_``, ``.`` and spaces)
    are masked throughout, keeping the shape: e-mails as ``j***@x.com``, phones as ``***21``,
    other strings and numbers as ``***``; ``None``, booleans and empty strings stay, since they
    reveal nothing and explain why a record was rejected. Every other string goes through
    ``redact_text``.

    Args:
        obj: dicts, lists and tuples of JSON-like values.
        keys: the sensitive keys; extend with ``SENSITIVE_KEYS | {...}``.
    """
    if keys is not SENSITIVE_KEYS:  # the default is already normalized
        keys = frozenset(_normalize_key(key) for key in keys)
    return _redact(obj, frozenset(keys), sensitive_key=None)


def fingerprint(value: str, seed: str, length: int = 16) -> str:
    """A stable pseudonym for ``value``: the first ``length`` hex digits of HMAC-SHA256(seed).

    The same value and seed always give the same result, so records can be correlated across
    runs and logs without storing the value. The value is hashed as given (no case folding).
    """
    digest = hmac.new(seed.encode(), value.encode(), hashlib.sha256).hexdigest()
    return digest[:length]


class RedactingFilter(logging.Filter):
    """Applies ``redact_text`` / ``redact_payload`` to a record's message, args and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place, once (it may pass several handlers); never drops it."""
        if getattr(record, "etl_redacted", False):
            return True  # masking a masked value again would blur it: ***21 -> ***
        record.etl_redacted = True
        if isinstance(record.args, Mapping):
            record.args = _redact_log_mapping(record.args)
        elif record.args:
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string: the handler reports it
            if isinstance(record.msg, str):
                record.msg = redact_text(record.msg)
        else:
            # The template itself, or an object's str(), may carry a secret: keep the redacted
            # text then (redacting the template alone could break its %-placeholders).
            redacted = redact_text(message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_log_filter = RedactingFilter()


def install_log_redaction() -> RedactingFilter:
    """Add the redacting filter to every handler of the root logger; safe to call again.

    Call it after logging is configured (handlers added later are not covered until it is
    called again). Returns the filter, so handlers elsewhere (e.g. Celery's task logger, which
    does not propagate) can add it too.
    """
    for handler in logging.getLogger().handlers:
        if _log_filter not in handler.filters:
            handler.addFilter(_log_filter)
    return _log_filter


def _redact_log_mapping(args: Mapping[str, Any]) -> dict[str, Any]:
    """``redact_payload`` of ``%(key)s`` log arguments, but a task name stays readable
    (``Task etl.process_chunk[...] received``, not ``Task ***[...]``)."""
    redacted = dict(redact_payload(args))
    name = args.get("name")
    if isinstance(name, str) and _TASK_NAME.fullmatch(name):
        redacted["name"] = name
    return redacted


def _normalize_key(key: object) -> str:
    return _KEY_JUNK.sub("", str(key)).lower()


def _redact(obj: Any, keys: frozenset[str], sensitive_key: str | None) -> Any:
    """Recursive worker: ``sensitive_key`` is the nearest sensitive key above ``obj``, if any."""
    if isinstance(obj, Mapping):
        result = {}
        for key, value in obj.items():
            normalized = _normalize_key(key)
            inherited = normalized if normalized in keys else sensitive_key
            result[key] = _redact(value, keys, inherited)
        return result
    if isinstance(obj, list):
        return [_redact(item, keys, sensitive_key) for item in obj]
    if isinstance(obj, tuple):
        return tuple(_redact(item, keys, sensitive_key) for item in obj)
    if isinstance(obj, str):
        if sensitive_key is None:
            return redact_text(obj)
        return _mask_string(obj, sensitive_key)
    if obj is None or isinstance(obj, bool):
        return obj
    if sensitive_key is not None:
        return MASK
    return copy.deepcopy(obj)


def _mask_string(value: str, key: str) -> str:
    if not value:
        return value
    if _EMAIL.fullmatch(value.strip()):
        return redact_email(value.strip())
    if "phone" in key or key in ("mobile", "telephone"):
        return redact_phone(value)
    return MASK


def _redact_arg(arg: object) -> object:
    if isinstance(arg, str):
        return redact_text(arg)
    if isinstance(arg, Mapping | list | tuple):
        return redact_payload(arg)
    return arg
