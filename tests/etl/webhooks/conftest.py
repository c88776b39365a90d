"""The realtime fixtures and helpers live in ``harness`` so other test folders can use them."""

from tests.etl.webhooks.harness import *  # noqa: F403
