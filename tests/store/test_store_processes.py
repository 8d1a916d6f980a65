"""Process leases and the runs a stopped process left behind."""

from datetime import timedelta

import trio

from flowtrux.engine.states import RunStatus
from flowtrux.ids import new_id
from flowtrux.store.executions import Finish, NewEvent, NewExecution
from flowtrux.store.store import Store
from flowtrux.store.workspaces import Workspace
from flowtrux.timestamps import to_iso, utc_now
from tests.stored import stored_execution

LEASE = timedelta(seconds=30)


async def run_of(store: Store, workspace: Workspace, process_id: str) -> str:
    new = NewExecution(
        id=new_id("exec"),
        workflow_id="wf-1",
        workspace_id=workspace.id,
        workflow_name="Workflow",
        trigger="manual",
        trigger_data={},
        started_by=None,
        process_id=process_id,
        started_at=utc_now(),
    )
    await store.executions.create(new)
    return new.id


async def lapse(store: Store, process_id: str, ago: timedelta) -> None:
    """Pretend `process_id` last renewed its lease `ago`."""
    heartbeat = to_iso(utc_now() - ago)
    await store.db.write(
        lambda conn: conn.execute(
            "UPDATE processes SET heartbeat_at = ? WHERE id = ?", (heartbeat, process_id)
        )
    )


async def leases(store: Store) -> list[tuple[str, str, str]]:
    rows = await store.db.read(
        lambda conn: conn.execute(
            "SELECT id, started_at, heartbeat_at FROM processes ORDER BY id"
        ).fetchall()
    )
    return [tuple(row) for row in rows]


async def test_orphaned_runs_are_the_running_runs_of_lapsed_or_missing_leases(
    store: Store, workspace: Workspace
) -> None:
    await store.processes.renew("dead")
    await store.processes.renew("live")
    await lapse(store, "dead", ago=timedelta(minutes=5))
    of_dead = await run_of(store, workspace, "dead")
    of_ghost = await run_of(store, workspace, "ghost")  # a process that never took a lease
    of_live = await run_of(store, workspace, "live")
    finished_of_dead = await run_of(store, workspace, "dead")
    await store.executions.append(
        [NewEvent(of_dead, seq, "node", {"seq": seq}) for seq in (1, 2, 3)]
        + [NewEvent(of_live, 1, "node", {})]
        + [Finish(finished_of_dead, RunStatus.COMPLETED, None, None, utc_now(), 1)]
    )

    orphans = await store.processes.orphaned_runs(lapsed_before=utc_now() - LEASE)

    assert set(orphans) == {of_dead, of_ghost}


async def test_a_lease_renewed_since_the_cutoff_keeps_its_runs(
    store: Store, workspace: Workspace
) -> None:
    await store.processes.renew("p")
    await lapse(store, "p", ago=timedelta(minutes=5))
    run = await run_of(store, workspace, "p")

    await store.processes.renew("p")  # the process is alive after all

    assert await store.processes.orphaned_runs(lapsed_before=utc_now() - LEASE) == []
    detail = await stored_execution(store, run)
    assert detail is not None
    assert detail.summary.status is RunStatus.RUNNING


async def test_a_released_lease_orphans_the_processes_running_runs(
    store: Store, workspace: Workspace
) -> None:
    await store.processes.renew("p")
    run = await run_of(store, workspace, "p")

    await store.processes.release("p")

    orphans = await store.processes.orphaned_runs(lapsed_before=utc_now() - LEASE)
    assert orphans == [run]
    assert await leases(store) == []


async def test_renew_twice_keeps_one_row_and_moves_the_heartbeat(store: Store) -> None:
    await store.processes.renew("p")
    [(_, started_at, first_heartbeat)] = await leases(store)
    await trio.sleep(0.01)  # timestamps have millisecond resolution

    await store.processes.renew("p")

    [(process_id, started_again, heartbeat)] = await leases(store)  # still one row
    assert (process_id, started_again) == ("p", started_at)
    assert heartbeat > first_heartbeat


async def test_orphaned_runs_forgets_lapsed_leases_only(store: Store) -> None:
    await store.processes.renew("dead")
    await store.processes.renew("live")
    await lapse(store, "dead", ago=timedelta(minutes=5))

    await store.processes.orphaned_runs(lapsed_before=utc_now() - LEASE)

    assert [process_id for process_id, _, _ in await leases(store)] == ["live"]
