"""JSON answers that can always be sent.

Everything FlowTrux takes in is valid Unicode (the strict door), but a row written by an earlier
version may hold a lone UTF-16 surrogate, which UTF-8 cannot carry: Starlette's `JSONResponse`
then raised, and the editor got a 500 for that workflow for ever. Such an answer is sent with
its text escaped (`\\ud800`), which every JSON parser reads back as it was stored.
"""

from typing import Any

from starlette import responses

from flowtrux.strict_json import dumps, utf8


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        return utf8(dumps(content))
