"""Protocol-faithful simulators of Meta's WhatsApp Graph API and Genesys Cloud (OAuth + Open
Messaging), for tests, demos and benchmarks of interlink.

    state = SimState()
    with SimServer(state) as server:          # real socket on 127.0.0.1:<free port>
        env = server.env()                    # INTERLINK_GENESYS_LOGIN_URL, ..._API_URL, META_GRAPH_URL
        state.genesys.add_org(...); state.meta.add_number(...)
        state.user.say(phone_number_id, WhatsAppUser(wa_id="351910000001"), "text", body="hi")
        state.agent.send(integration_id, to_id, text="hello")
        state.requests(kind="genesys.message", tenant=org_id)
        state.faults.inject("meta.messages", count=2, meta_error=131056)
"""

from interlink.sim.app import create_sim_app
from interlink.sim.driver import Delivery
from interlink.sim.faults import ROUTES, FaultRule
from interlink.sim.genesys import genesys_signature
from interlink.sim.recorder import RecordedRequest
from interlink.sim.server import SimServer
from interlink.sim.state import SimState, env_for
from interlink.sim.whatsapp_payloads import WhatsAppUser, meta_signature

__all__ = [
    "ROUTES",
    "Delivery",
    "FaultRule",
    "RecordedRequest",
    "SimServer",
    "SimState",
    "WhatsAppUser",
    "create_sim_app",
    "env_for",
    "genesys_signature",
    "meta_signature",
]
