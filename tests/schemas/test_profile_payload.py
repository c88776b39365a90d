"""``profile_from_customer`` builds its payload directly; ``ProfileSchema`` stays the contract.

The mapping skips ``ProfileSchema().dump`` for speed (bench/customers.py); this test keeps the
two equal, so a field whose sent form differs from its mapped value fails here, not in Synerise.
"""

from __future__ import annotations

import pytest

from etl.errors import SkippableRecordError
from etl.sandbox.data import Dataset
from schemas.mapping import MappingConfig, profile_from_customer
from schemas.synerise import ProfileSchema


@pytest.mark.parametrize(
    "config",
    [
        MappingConfig(),
        MappingConfig(extra_attributes=("document", "isCorporate", "localeDefault")),
    ],
)
def test_the_payload_is_what_profile_schema_dumps(config):
    dataset = Dataset(3000, 0, seed=7, dirty_share=0.3)
    schema = ProfileSchema()
    sent = 0
    for i in range(dataset.customer_count):
        document = dataset.customer(i)
        try:
            profile = profile_from_customer(document, config)
        except SkippableRecordError:
            continue
        sent += 1
        assert profile == schema.dump(profile)
        assert None not in profile.values()
    assert sent > 2000
