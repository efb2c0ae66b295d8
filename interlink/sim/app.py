"""The simulators' one Falcon application: Genesys, Meta and the ``/_sim`` control routes."""

from __future__ import annotations

import logging
from typing import Any

import falcon
import falcon.media

from interlink.sim import control, genesys_api, meta_api
from interlink.sim.meta_api import UPLOAD_LIMIT
from interlink.sim.state import SimState
from interlink.sim.web import RecordingMiddleware

log = logging.getLogger(__name__)


def _unexpected_error(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any
) -> None:
    log.exception("simulator bug", extra={"method": req.method, "route": req.path})
    raise falcon.HTTPInternalServerError(
        title="Simulator error", description=f"{type(ex).__name__}: {ex}"
    )


def create_sim_app(state: SimState) -> falcon.App:
    """A WSGI app serving both simulators on one port (see ``genesys_api``, ``meta_api`` and
    ``control`` for the routes). Serve it with :class:`interlink.sim.server.SimServer` to get
    dropped-connection faults on a real socket."""
    app = falcon.App(middleware=[RecordingMiddleware(state)])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    multipart = falcon.media.MultipartFormHandler()
    multipart.parse_options.max_body_part_buffer_size = UPLOAD_LIMIT
    app.req_options.media_handlers[falcon.MEDIA_MULTIPART] = multipart
    app.add_error_handler(Exception, _unexpected_error)
    genesys_api.add_routes(app, state)
    meta_api.add_routes(app, state)
    control.add_routes(app, state)
    return app
