"""Noticing that the client went away.

Under hypercorn's trio worker `Request.is_disconnected()` never reports a disconnect; the ASGI
`http.disconnect` message does, within about a millisecond, once the body has been read.
"""

import trio
from starlette.types import Receive


async def cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    """Cancel `scope` when the client disconnects. Run it beside the work it guards."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
