"""The ceiling: a bare Falcon hello world on the shard's own server settings (gevent pywsgi with
TCP_NODELAY). Every other throughput is reported as a ratio of this one, measured in the same run."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import falcon  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from interlink.http.server import NoDelayHandler  # noqa: E402


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"hello": "world"}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        # The yardstick of the delivery benchmark: read a body, answer it back.
        resp.content_type = falcon.MEDIA_JSON
        resp.data = req.bounded_stream.read()


if __name__ == "__main__":
    app = falcon.App()
    app.add_route("/", Hello())
    WSGIServer(
        ("127.0.0.1", int(sys.argv[1])), app, handler_class=NoDelayHandler, log=None
    ).serve_forever()
