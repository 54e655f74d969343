"""Fixtures for the service tests."""

from __future__ import annotations

import pytest
from service_helpers import make_host, start_service, stop_service


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("service")
    host = make_host(tmp)
    proc = start_service(tmp, host)
    yield dict(host, proc=proc, tmp=tmp)
    stop_service(proc)
