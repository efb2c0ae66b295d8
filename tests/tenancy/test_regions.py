"""Genesys Cloud regions: the seventeen domains, old names normalised, legacy settings read."""

from __future__ import annotations

import pytest

from interlink.tenancy.regions import (
    REGIONS,
    UnknownRegion,
    normalize_region,
    region_from_legacy_setting,
)


def test_regions_are_the_seventeen_domains() -> None:
    assert len(REGIONS) == 17 == len(set(REGIONS))
    assert {
        "mypurecloud.com",
        "mypurecloud.ie",
        "aps1.pure.cloud",
        "use2.us-gov-pure.cloud",
    } <= set(REGIONS)
    assert normalize_region(" MyPureCloud.IE ") == "mypurecloud.ie"
    assert normalize_region("aps1.mypurecloud.com") == "aps1.pure.cloud"
    with pytest.raises(UnknownRegion) as caught:
        normalize_region("mypurecloud.xx")
    assert all(region in str(caught.value) for region in REGIONS)
    assert region_from_legacy_setting("eu_west_1") == "mypurecloud.ie"
    assert region_from_legacy_setting("https://api.mypurecloud.de/") == "mypurecloud.de"
