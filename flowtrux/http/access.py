"""Who is calling, and may they do this? 401 without a session, 404 for what a user cannot see,
403 for what their role does not allow."""

from starlette.requests import Request

from flowtrux.access import Permission, Role
from flowtrux.errors import NotAuthenticated, NotFound, PermissionDenied
from flowtrux.http.services import services
from flowtrux.store.users import User
from flowtrux.store.workflows import Workflow

SESSION_COOKIE = "flowtrux_session"

ACTIONS = {
    Permission.VIEW: "view this",
    Permission.EDIT: "edit workflows",
    Permission.EXECUTE: "run workflows",
    Permission.ADMIN: "administer this workspace",
}


async def current_user(request: Request) -> User:
    token = request.cookies.get(SESSION_COOKIE)
    user = await services(request).store.sessions.user_of(token) if token else None
    if user is None:
        raise NotAuthenticated()
    return user


async def require(
    request: Request, user: User, workspace_id: str, permission: Permission, kind: str, ident: str
) -> None:
    """Raise NotFound (naming `kind` `ident`) unless `user` is a member of the workspace, and
    PermissionDenied unless their role grants `permission`."""
    role = await services(request).store.workspaces.role_of(user.id, workspace_id)
    _check(role, permission, kind, ident)


def _check(role: Role | None, permission: Permission, kind: str, ident: str) -> None:
    if role is None:
        raise NotFound(kind, ident)
    if not role.can(permission):
        raise PermissionDenied(ACTIONS[permission])


async def caller_and_workflow(request: Request, permission: Permission) -> tuple[User, Workflow]:
    """The caller, and the workflow named by the path's `workflow_id` if they may do
    `permission` on it (one read of the store)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotAuthenticated()
    workflow_id = request.path_params["workflow_id"]
    user, found = await services(request).store.caller_and_workflow(token, workflow_id)
    if user is None:
        raise NotAuthenticated()
    if found is None:
        raise NotFound("workflow", workflow_id)
    workflow, role = found
    _check(role, permission, "workflow", workflow_id)
    return user, workflow
