"""Logins against `flowtrux serve` as a process, with argon2 at its production cost: an unknown
email costs as much as a wrong password, and a burst of logins hashes a few at a time."""

import os
import statistics
from pathlib import Path

import httpx
import trio

from flowtrux.passwords import HASHES_AT_ONCE
from tests.e2e.processes import create_owner, flowtrux, rss_bytes, running

EMAIL, PASSWORD = "ada@example.com", "a long and proper password"
BURST = 40


async def serving_with_a_user(tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    env = {**os.environ, "FLOWTRUX_DATABASE_URL": f"sqlite:///{tmp_path}/logins.db"}
    await create_owner(env, tmp_path, EMAIL, PASSWORD)
    return env, flowtrux("serve", "--port", "0")


async def timed_login(client: httpx.AsyncClient, email: str) -> float:
    started = trio.current_time()
    response = await client.post("/api/auth/login", json={"email": email, "password": "wrong"})
    assert response.status_code == 401, response.text
    return trio.current_time() - started


async def test_an_unknown_email_takes_as_long_as_a_wrong_password(tmp_path: Path) -> None:
    env, command = await serving_with_a_user(tmp_path)
    async with (
        running(command, env, tmp_path) as (_, url, _),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        known, unknown = [], []
        for index in range(7):  # interleaved, so that both see the same machine
            known.append(await timed_login(client, EMAIL))
            unknown.append(await timed_login(client, f"nobody-{index}@example.com"))
    # Before the decoy was checked on this path: 5 ms against 252 ms.
    assert statistics.median(unknown) > 0.5 * statistics.median(known), (known, unknown)


async def test_a_burst_of_logins_hashes_a_few_at_a_time(tmp_path: Path) -> None:
    env, command = await serving_with_a_user(tmp_path)
    async with running(command, env, tmp_path) as (process, url, _):
        async with httpx.AsyncClient(base_url=url, timeout=60) as warm:
            await timed_login(warm, EMAIL)  # the decoy and the thread pool exist from now on
        baseline = peak = rss_bytes(process.pid)
        answers: list[httpx.Response] = []

        async def login() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                wrong = {"email": EMAIL, "password": "wrong"}
                answers.append(await client.post("/api/auth/login", json=wrong))

        async with trio.open_nursery() as nursery:
            for _ in range(BURST):
                nursery.start_soon(login)
            while len(answers) < BURST:
                peak = max(peak, rss_bytes(process.pid))
                await trio.sleep(0.02)

    # argon2 takes 64 MiB a hash: 40 at once grew the server by about 2.5 GiB.
    assert peak - baseline < 320 * 2**20, f"grew by {(peak - baseline) / 2**20:.0f} MiB"
    assert {response.status_code for response in answers} <= {401, 503}
    # Some were checked: at least as many as are hashed at once (a server checking none would
    # answer 503 to all and grow by nothing).
    assert sum(response.status_code == 401 for response in answers) >= HASHES_AT_ONCE
    for response in answers:
        if response.status_code == 503:  # past the queue: told to come back, not left hanging
            assert response.json()["code"] == "busy"
            assert response.headers["retry-after"] == "1"
