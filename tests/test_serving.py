import socket

import pytest
import requests
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import impilo_nb as nb
from impilo_nb.errors import ConfigurationError
from impilo_nb.serving import BackgroundServer, BackgroundService


def app():
    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("hello"))])


def test_serves_on_a_free_loopback_port_and_stops():
    server = BackgroundServer(app(), name="test")
    with server:
        assert server.running and server.port
        assert requests.get(f"http://127.0.0.1:{server.port}/", timeout=5).text == "hello"
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.port}/", timeout=2)


def test_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError) as caught:
            BackgroundServer(app(), port=port, name="test").start()
    assert "already in use" in str(caught.value) and str(port) in str(caught.value)


def test_port_can_be_reused_after_stop():
    first = BackgroundServer(app())
    first.start()
    port = first.port
    first.stop()
    with BackgroundServer(app(), port=port) as second:
        assert requests.get(f"http://127.0.0.1:{second.port}/", timeout=5).status_code == 200


def test_start_twice_and_stop_twice_are_harmless():
    server = BackgroundServer(app())
    server.start()
    server.start()
    server.stop()
    server.stop()


def test_listening_socket_is_declared_tcp_so_responses_are_not_delayed():
    # asyncio sets TCP_NODELAY on accepted connections only for sockets whose proto is TCP;
    # without it every keep-alive response waited ~40 ms for a delayed ACK.
    with BackgroundServer(app()) as server:
        assert server._socket.proto == socket.IPPROTO_TCP


class Hello(BackgroundService):
    def __init__(self):
        super().__init__(app(), host="127.0.0.1", port=0, name="hello")

    def _repr_fields(self):
        return {"greeting": "'hello'"}


def test_a_background_service_starts_stops_and_says_where_it_listens():
    service = Hello()
    assert repr(service) == "Hello(stopped, greeting='hello')" and not service.running
    with pytest.raises(ConfigurationError, match="not started yet"):
        service.url  # noqa: B018 - the property raises
    with service as started:
        assert started is service and service.running
        assert requests.get(service.url + "/", timeout=5).text == "hello"
        assert repr(service) == f"Hello({service.url}, greeting='hello')"
    assert not service.running
    assert service.start() is service  # start() returns the service, and it can start again
    service.stop()


def test_the_sandbox_and_the_receiver_are_background_services():
    assert issubclass(nb.Sandbox, BackgroundService) and issubclass(nb.WebhookReceiver, BackgroundService)
