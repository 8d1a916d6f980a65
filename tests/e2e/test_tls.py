"""With a certificate in hypercorn.toml the server speaks TLS and negotiates HTTP/2 by ALPN."""

import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from tests.e2e.conftest import StartServer


@pytest.mark.parametrize(("http2", "negotiated"), [(True, "HTTP/2"), (False, "HTTP/1.1")])
async def test_alpn_negotiates_the_protocol(
    start_server: StartServer, tmp_path: Path, http2: bool, negotiated: str
) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certificate.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    config_file = tmp_path / "hypercorn.toml"
    pem = tmp_path / "server.pem"
    config_file.write_text(f'certfile = "{pem}"\nkeyfile = "{pem}"\n')

    server = await start_server(config_file=config_file)
    assert server.url.startswith("https://")

    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    async with httpx.AsyncClient(verify=trusted, http2=http2) as client:
        response = await client.get(f"{server.url}/healthz")
    assert response.status_code == 200
    assert response.http_version == negotiated
