"""Roles and what each may do in a workspace."""

from enum import StrEnum


class Permission(StrEnum):
    VIEW = "canView"
    EDIT = "canEdit"
    EXECUTE = "canExecute"
    ADMIN = "canAdmin"


class Role(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    OPERATOR = "operator"
    VIEWER = "viewer"

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self]

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self]


ROLE_PERMISSIONS = {
    Role.OWNER: frozenset(Permission),
    Role.EDITOR: frozenset({Permission.VIEW, Permission.EDIT, Permission.EXECUTE}),
    Role.OPERATOR: frozenset({Permission.VIEW, Permission.EXECUTE}),
    Role.VIEWER: frozenset({Permission.VIEW}),
}
