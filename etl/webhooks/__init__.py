"""The webhook service: VTEX and Synerise call it, it enqueues realtime work (docs/webhooks.md).

``app`` (the WSGI app), ``auth`` (the shared secret), ``payloads`` (accepted bodies),
``handlers`` (body -> task), ``server`` (werkzeug or gunicorn).
"""
