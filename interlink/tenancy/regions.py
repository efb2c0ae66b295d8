"""The Genesys Cloud regions, named by their domain (the 17 hosts of the official Python SDK's
``purecloud_region_hosts.py``, https://github.com/MyPureCloud/platform-client-sdk-python).

A tenant's region is stored as one of these 17 domains; the API host is ``api.<domain>`` and the
login host ``login.<domain>`` (``INTERLINK_GENESYS_*_URL`` templates). The only other spelling the
admin API accepts is the legacy ``aps1.mypurecloud.com``, which never existed upstream: Mumbai is
``aps1.pure.cloud``, and that is what gets stored.
"""

from __future__ import annotations

# SDK region key -> domain, in the order of the Python SDK's purecloud_region_hosts.py.
REGION_BY_SDK_KEY: dict[str, str] = {
    "us_east_1": "mypurecloud.com",
    "us_east_2": "use2.us-gov-pure.cloud",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "eu_west_1": "mypurecloud.ie",
    "eu_west_2": "euw2.pure.cloud",
    "eu_central_1": "mypurecloud.de",
    "eu_central_2": "euc2.pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
    "ap_southeast_2": "mypurecloud.com.au",
    "ap_northeast_1": "mypurecloud.jp",
    "ap_northeast_2": "apne2.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
}

REGIONS: tuple[str, ...] = tuple(REGION_BY_SDK_KEY.values())

# Spellings accepted on input and stored as the canonical domain.
LEGACY_ALIASES: dict[str, str] = {"aps1.mypurecloud.com": "aps1.pure.cloud"}


class UnknownRegion(ValueError):
    """Not a Genesys region domain. ``str()`` lists the valid values (it never holds a secret)."""

    def __init__(self, value: str) -> None:
        shown = value if len(value) <= 64 else value[:64] + "..."
        super().__init__(
            f"{shown!r} is not a Genesys Cloud region; use one of: {', '.join(REGIONS)}."
        )


def normalize_region(value: str) -> str:
    """The canonical domain for ``value`` (case and surrounding blanks ignored), or UnknownRegion."""
    domain = value.strip().lower()
    domain = LEGACY_ALIASES.get(domain, domain)
    if domain not in REGIONS:
        raise UnknownRegion(value)
    return domain


def region_from_legacy_setting(value: str) -> str:
    """Best effort for old single-tenant settings: a domain, an SDK key (``eu_west_1``) or a URL
    (``https://api.mypurecloud.ie``). Used by the migration command only; the API stays strict."""
    text = value.strip().lower()
    if text in REGION_BY_SDK_KEY:
        return REGION_BY_SDK_KEY[text]
    text = text.removeprefix("https://").removeprefix("http://").rstrip("/")
    for prefix in ("api.", "login.", "apps."):
        text = text.removeprefix(prefix)
    return normalize_region(text)
