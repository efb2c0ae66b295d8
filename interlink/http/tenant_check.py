"""``POST /api/tenants/{tenantId}/check``: the tenant's setup proven against the live providers.

The operator or the tenant's own key. The shard makes the calls because it holds the decrypted
secrets; the answer is ``{"ok", "checks": [{"name", "ok", "detail"}]}`` with 200 whatever the
providers said (their refusal is the finding, not an error of this request). ``ok`` of a check is
``null`` when it could not be made; that does not fail the tenant.
"""

from __future__ import annotations

import falcon

from interlink.http.auth import require_tenant
from interlink.http.tenants import tenant_id_param
from interlink.providers.checks import passed, run_checks
from interlink.providers.session import new_session
from interlink.services import Services


class TenantCheck:
    def __init__(self, services: Services) -> None:
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenantId: str) -> None:
        require_tenant(req, tenant_id_param(tenantId))
        # Straight from the store, not the directory's cache: the operator checks what is saved.
        config = self.services.tenants.load_config(tenantId)
        if config is None:
            raise falcon.HTTPNotFound(title="Unknown tenant", description="No such tenant.")
        checks = run_checks(config, self.services.settings, new_session)
        resp.cache_control = ["no-store"]
        resp.media = {"ok": passed(checks), "checks": [c.as_json() for c in checks]}
