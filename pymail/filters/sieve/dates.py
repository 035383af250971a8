"""Date parts for the "date" and "currentdate" tests (RFC 5260 §4.2, §5)."""

from __future__ import annotations

import datetime as dt
import email.utils
import re

DATE_PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
              "iso8601", "std11", "zone", "weekday")
_MJD_EPOCH = dt.date(1858, 11, 17)  # RFC 5260 §4.2: "julian" is the Modified Julian Day


def parse_zone(zone: str) -> dt.tzinfo | None:
    """``+0100`` / ``-0530`` → a fixed offset (RFC 5260 §4.1.1); None when malformed."""
    m = re.fullmatch(r"([+-])(\d\d)(\d\d)", zone.strip())
    if not m or int(m.group(3)) > 59:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return dt.timezone(dt.timedelta(minutes=minutes if m.group(1) == "+" else -minutes))


def header_datetime(value: str) -> dt.datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": UTC with unknown local zone (RFC 5322 §3.3)
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def _zone_text(moment: dt.datetime) -> str:
    offset = moment.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def date_part(moment: dt.datetime, part: str) -> str | None:
    part = part.lower()
    if part == "year":
        return f"{moment.year:04d}"
    if part == "month":
        return f"{moment.month:02d}"
    if part == "day":
        return f"{moment.day:02d}"
    if part == "date":
        return moment.strftime("%Y-%m-%d")
    if part == "julian":
        return str((moment.date() - _MJD_EPOCH).days)
    if part == "hour":
        return f"{moment.hour:02d}"
    if part == "minute":
        return f"{moment.minute:02d}"
    if part == "second":
        return f"{moment.second:02d}"
    if part == "time":
        return moment.strftime("%H:%M:%S")
    if part == "iso8601":
        zone = _zone_text(moment)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f"{zone[:3]}:{zone[3:]}"
    if part == "std11":
        return email.utils.format_datetime(moment)
    if part == "zone":
        return _zone_text(moment)
    if part == "weekday":
        return str((moment.weekday() + 1) % 7)  # 0 = Sunday
    return None
