"""UTC timestamps as the API and the store write them: `2026-11-28T13:45:00.123Z`."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)
