"""n8n beside FlowTrux: installed with npm into a cache folder on first use, run headless on
loopback (its own SQLite in a temporary folder, no telemetry), with chains of Set nodes behind
webhooks, imported and activated with its command line before it starts.

A chain of N is Webhook -> N Set nodes -> the answer is the last node's output
(`responseMode: lastNode`), the Set nodes doing what FlowTrux's transforms do: one field read from
the request (`{{ $json.body.x }}`, then `{{ $json.i }}` from the node before).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from bench import procs, rawhttp

VERSION = "1.123.0"
CACHE = Path(os.environ.get("FLOWTRUX_BENCH_CACHE", Path.home() / ".cache" / "flowtrux-bench"))
FOLDER = CACHE / "n8n"
INSTALL_LOG = CACHE / "n8n-install.log"
# n8n-nodes-base names SheetJS's own CDN for `xlsx`, a host out of reach where only package
# registries are; the npm registry's last `xlsx` stands in. Only the spreadsheet nodes use it,
# none of this benchmark's.
PACKAGE = {
    "name": "flowtrux-bench-n8n",
    "private": True,
    "dependencies": {"n8n": VERSION},
    "overrides": {"xlsx": "0.18.5"},
}
OWNER = {  # n8n asks for one before anything can be saved
    "email": "bench@example.com",
    "firstName": "Bench",
    "lastName": "FlowTrux",
    "password": "Bench-password-1",
}
INSTALL_TIMEOUT_S = 3600
START_TIMEOUT_S = 180
UP = b"Editor is now accessible via"
SETTINGS = {  # headless, quiet, nothing sent out; every other setting is n8n's default
    "N8N_LISTEN_ADDRESS": "127.0.0.1",
    "N8N_DIAGNOSTICS_ENABLED": "false",
    "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
    "N8N_TEMPLATES_ENABLED": "false",
    "N8N_PERSONALIZATION_ENABLED": "false",
    "N8N_HIRING_BANNER_ENABLED": "false",
    "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true",
    "N8N_SECURE_COOKIE": "false",  # plain HTTP on loopback: a Secure cookie would not come back
    "DB_SQLITE_POOL_SIZE": "4",  # n8n's advice for SQLite (WAL, read connections), as FlowTrux
}


def binary() -> Path:
    return FOLDER / "node_modules" / ".bin" / "n8n"


def installed() -> bool:
    package = FOLDER / "node_modules" / "n8n" / "package.json"
    return (
        binary().exists()
        and package.exists()
        and json.loads(package.read_text())["version"] == VERSION
    )


async def install() -> str:
    """Install n8n into the cache folder unless it is there; "" when done, else why not."""
    if installed():
        return ""
    if shutil.which("npm") is None:
        return "npm not found: n8n not installed, its figures skipped"
    FOLDER.mkdir(parents=True, exist_ok=True)
    (FOLDER / "package.json").write_text(json.dumps(PACKAGE, indent=2))
    print(f"installing n8n {VERSION} into {FOLDER} (once; about 15 minutes), log: {INSTALL_LOG}")
    command = ["npm", "install", "--prefix", str(FOLDER), "--no-audit", "--no-fund"]
    with INSTALL_LOG.open("wb") as log, trio.move_on_after(INSTALL_TIMEOUT_S):
        done = await trio.run_process(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode == 0 and installed():
            return ""
    tail = INSTALL_LOG.read_text(errors="replace").strip().splitlines()[-3:]
    return f"n8n could not be installed ({INSTALL_LOG}): {' / '.join(tail)}"


def chain_workflow(transforms: int) -> dict[str, Any]:
    """Webhook -> `transforms` Set nodes, answering with the last node's output."""
    path = chain_path(transforms)[len("/webhook/") :]
    webhook = {
        "id": str(uuid.uuid4()), "name": "Webhook", "type": "n8n-nodes-base.webhook",
        "typeVersion": 2, "position": [0, 0], "webhookId": str(uuid.uuid4()),
        "parameters": {"httpMethod": "POST", "path": path, "responseMode": "lastNode",
                       "responseData": "firstEntryJson", "options": {}},
    }  # fmt: skip
    nodes, connections = [webhook], {}
    for index in range(1, transforms + 1):
        read = "$json.body.x" if index == 1 else "$json.i"
        assignment = {"id": str(uuid.uuid4()), "name": "i", "value": f"={{{{ {read} }}}}",
                      "type": "number"}  # fmt: skip
        nodes.append({
            "id": str(uuid.uuid4()), "name": f"t{index}", "type": "n8n-nodes-base.set",
            "typeVersion": 3.4, "position": [200 * index, 0],
            "parameters": {"assignments": {"assignments": [assignment]}, "options": {}},
        })  # fmt: skip
        previous = nodes[-2]["name"]
        connections[previous] = {"main": [[{"node": f"t{index}", "type": "main", "index": 0}]]}
    return {
        "id": f"ftxbench{transforms:08d}",
        "name": f"FlowTrux bench: chain of {transforms}",
        "nodes": nodes,
        "connections": connections,
        "active": False,  # activated once imported (see `_activate`)
        "versionId": str(uuid.uuid4()),
        "settings": {"executionOrder": "v1"},
    }


def chain_path(transforms: int) -> str:
    return f"/webhook/flowtrux-bench-chain-{transforms}"


@attrs.frozen
class N8n:
    process: trio.Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, path: str, body: bytes = b'{"x":1}') -> bytes:
        return rawhttp.request("POST", path, body)

    async def call(self, path: str) -> rawhttp.Response:
        """One webhook call on a fresh connection."""
        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        async with stream:
            await stream.send_all(self.request(path))
            return await rawhttp.Connection(stream).response()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def running_n8n(chains: Sequence[int]) -> AsyncIterator[N8n]:
    """n8n on 127.0.0.1 with a chain workflow of each length in `chains`, active."""
    with tempfile.TemporaryDirectory(prefix="flowtrux-bench-n8n-") as folder:
        port = free_port()
        env = {**os.environ, **SETTINGS, "N8N_USER_FOLDER": folder, "N8N_PORT": str(port)}
        imported = [chain_workflow(transforms) for transforms in chains]
        for workflow in imported:
            document = Path(folder) / f"{workflow['id']}.json"
            document.write_text(json.dumps(workflow))
            await _cli(env, folder, "import:workflow", f"--input={document}")
        log = Path(folder) / "n8n.log"
        with log.open("wb") as output:
            process = await trio.lowlevel.open_process(
                [str(binary()), "start"], env=env, cwd=folder, stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            n8n = N8n(process, port)
            await _until_up(n8n, log)
            await _activate(n8n, imported)
            await _until_answering(n8n, chains)
            yield n8n
        finally:
            await procs.stop(process, grace_s=20)


async def _cli(env: dict[str, str], folder: str, *args: str) -> None:
    done = await trio.run_process(
        [str(binary()), *args], env=env, cwd=folder, capture_stdout=True,
        stderr=subprocess.STDOUT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"n8n {args[0]} failed: {done.stdout.decode(errors='replace')[-2000:]}")


async def _activate(n8n: N8n, workflows: list[dict[str, Any]]) -> None:
    """Set up the owner, then save each workflow active, through n8n's REST API.

    `n8n update:workflow --active=true` cannot do it in 1.123: activation points the workflow at
    its current version in the history, which `import:workflow` does not write (FOREIGN KEY
    constraint failed). Saving it through the API writes that version.
    """
    # n8n ties its session to the `browser-id` header it was opened with.
    headers = {"browser-id": "flowtrux-bench"}
    async with httpx.AsyncClient(base_url=n8n.url, headers=headers, timeout=60) as client:
        (await client.post("/rest/owner/setup", json=OWNER)).raise_for_status()
        for workflow in workflows:
            change = {"name": workflow["name"], "versionId": workflow["versionId"], "active": True}
            saved = await client.patch(f"/rest/workflows/{workflow['id']}", json=change)
            if saved.status_code != 200:
                raise RuntimeError(f"n8n: activation refused: {saved.status_code} {saved.text}")


async def _until_up(n8n: N8n, log: Path) -> None:
    """Wait for n8n's line saying it is up: it comes once its active workflows are loaded
    (its REST API answers before that, and a workflow activated then may get no webhook)."""
    with trio.fail_after(START_TIMEOUT_S):
        while UP not in await trio.Path(log).read_bytes():
            if n8n.process.poll() is not None:
                output = await trio.Path(log).read_text(errors="replace")
                raise RuntimeError(f"n8n exited: {output[-3000:]}")
            await trio.sleep(0.2)


async def _until_answering(n8n: N8n, chains: Sequence[int]) -> None:
    """Wait until every chain's webhook answers (activation is asynchronous)."""
    with trio.fail_after(START_TIMEOUT_S):
        for transforms in chains:
            while True:
                if (await n8n.call(chain_path(transforms))).head.status == 200:
                    break
                await trio.sleep(0.2)
