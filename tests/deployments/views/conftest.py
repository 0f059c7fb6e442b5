"""Fixtures of the log viewer's tests (simulated and real node)."""

import pytest
from django.test import AsyncClient

from deployments.integrations.kube import Kube
from tests.deployments.views.test_streams import in_own_loop
from tests.factories import UserFactory


@pytest.fixture
def viewer_client():
    aclient = AsyncClient()
    in_own_loop(aclient.aforce_login, UserFactory(role="viewer"))
    return aclient


@pytest.fixture
def follow_streams(monkeypatch):
    """Every LogStream the views open, with its connection's (local port, peer port): a
    local port alone may be taken again by a connection elsewhere once this one closed."""
    opened = []
    original = Kube.pod_log_follow

    def recording(self, *args, **kwargs):
        stream = original(self, *args, **kwargs)
        sock = stream._response.connection.sock
        opened.append((stream, (sock.getsockname()[1], sock.getpeername()[1])))
        return stream

    monkeypatch.setattr(Kube, "pod_log_follow", recording)
    return opened
