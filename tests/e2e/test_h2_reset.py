"""An HTTP/2 client that resets its stream (what a browser's AbortController does) cancels the
run, and its connection keeps serving other streams."""

import json
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import trio

from tests.e2e.conftest import Server, logged_in, wait_until_finished
from tests.support import chain, delay, transform, trigger


class RawH2:
    """Just enough of an HTTP/2 client (prior knowledge) to start a stream and reset it."""

    def __init__(self, stream: trio.SocketStream, authority: str) -> None:
        self.stream = stream
        self.authority = authority
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()

    async def post(self, path: str, cookie: str, body: bytes) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", self.authority),
            (":path", path),
            ("content-type", "application/json"),
            ("cookie", cookie),
        ]
        self.conn.send_headers(stream_id, headers)
        self.conn.send_data(stream_id, body, end_stream=True)
        await self.flush()
        return stream_id

    async def read_until(self, stream_id: int, needle: bytes) -> bytes:
        received = b""
        while needle not in received:
            for event in self.conn.receive_data(await self.stream.receive_some()):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                    received += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            await self.flush()
        return received

    async def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        await self.flush()

    async def flush(self) -> None:
        await self.stream.send_all(self.conn.data_to_send())


async def test_resetting_the_stream_cancels_the_run(server: Server) -> None:
    workspace_id = await server.member("owner@example.com")
    doc = chain(trigger(), delay("wait", 30_000), transform("after", 1))
    workflow = await server.store.workflows.create(workspace_id, "Slow", doc["nodes"], doc["edges"])
    async with httpx.AsyncClient(base_url=server.url) as client:
        await logged_in(client, "owner@example.com")
        cookie = f"flowtrux_session={client.cookies['flowtrux_session']}"
        url = urlsplit(server.url)
        tcp = await trio.open_tcp_stream(url.hostname or "", url.port or 80)
        async with tcp:
            h2c = RawH2(tcp, url.netloc)
            path = f"/api/workflows/{workflow.id}/execute/stream"
            stream_id = await h2c.post(path, cookie, b"{}")
            received = await h2c.read_until(stream_id, b'"nodeId":"wait"')
            start = json.loads(received.split(b"data: ", 1)[1].split(b"\n", 1)[0])
            await h2c.reset(stream_id)

            history = await wait_until_finished(client, start["executionId"])
            assert history["status"] == "CANCELLED"
            assert [(log["nodeId"], log["status"]) for log in history["logs"]] == [
                ("trigger", "success"),
                ("wait", "cancelled"),
                ("after", "skipped"),
            ]
            # The connection is still good for the next run.
            second = await h2c.post(path, cookie, b"{}")
            assert b"event: start" in await h2c.read_until(second, b"event: start")
