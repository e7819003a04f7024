"""Date/time patterns of the two time functions, each in the pattern language AWS names.

``parse_time(pattern, ms[, zone])`` formats with a **Joda-Time** pattern
(``DateTimeFormat``: ``"yyyy.MM.dd G 'at' HH:mm:ss z"``); ``time_to_epoch(text, pattern)``
parses with a **JDK 11** ``DateTimeFormatter`` pattern (``"yyyy-MM-dd HH:mm:ss VV"``).
The two languages share most letters but not all (Joda's ``Z`` vs Java's ``VV`` for a zone
ID), so each has its own table here. English names, as the service's examples show.

Pure: a time is given in milliseconds and a zone by its ID; nothing reads the clock.
Patterns a function cannot honour make it return Undefined (None here), as AWS documents
for invalid arguments (iot-sql-data-types.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_OFFSET = re.compile(r"([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?\Z")


@lru_cache(maxsize=256)
def zone(zone_id: str) -> tzinfo | None:
    """A Joda/Java zone ID as a tzinfo: ``UTC``, a region (``America/Belize``), an offset
    (``+05:00``) or ``UTC``/``GMT``/``UT`` with an offset (``UTC+01:00``); None if unknown."""
    if zone_id in ("UTC", "Z", "GMT", "UT"):
        return UTC
    for prefix in ("UTC", "GMT", "UT"):
        if zone_id.startswith(prefix) and zone_id[len(prefix) : len(prefix) + 1] in ("+", "-"):
            return _fixed(zone_id[len(prefix) :])
    if zone_id[:1] in ("+", "-"):
        return _fixed(zone_id)
    try:
        return ZoneInfo(zone_id)
    except (KeyError, ValueError, OSError):  # not found (a KeyError), a bad key, a folder
        return None


def _fixed(text: str) -> tzinfo | None:
    m = _OFFSET.match(text)
    if m is None:
        return None
    sign, hours, minutes, seconds = m.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0), seconds=int(seconds or 0))
    if delta > timedelta(hours=18):
        return None
    return timezone(-delta if sign == "-" else delta)


def _offset_text(when: datetime, colon: bool) -> str:
    offset = when.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}{':' if colon else ''}{minutes % 60:02d}"


def _zone_name(when: datetime, zone_id: str) -> str:
    """Joda's short zone name: ``CST``, ``UTC``; a fixed offset prints as ``+05:00``."""
    if isinstance(when.tzinfo, ZoneInfo) or when.tzinfo is UTC:
        name = when.tzname()
        if name and name[0] not in "+-":
            return name
    return "UTC" if when.utcoffset() == timedelta(0) else _offset_text(when, colon=True)


# -- Joda-Time formatting (parse_time) -------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Field:
    letter: str
    count: int


def _tokens(pattern: str, letters: str, sections: bool = False) -> list[str | _Field] | None:
    """A pattern as literal text and letter runs; None for a letter outside ``letters``
    (Joda and Java both refuse unknown pattern letters). With ``sections`` (Java), an
    unquoted ``[`` or ``]`` opens or closes an optional section: a ``_Field`` of count 0."""
    out: list[str | _Field] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            j = i + 1
            text: list[str] = []
            while j < n:
                if pattern[j] == "'":
                    if j + 1 < n and pattern[j + 1] == "'":
                        text.append("'")
                        j += 2
                        continue
                    break
                text.append(pattern[j])
                j += 1
            out.append("".join(text) if j > i + 1 else "'")
            i = j + 1
        elif c.isascii() and c.isalpha():
            if c not in letters:
                return None
            j = i
            while j < n and pattern[j] == c:
                j += 1
            out.append(_Field(c, j - i))
            i = j
        else:
            out.append(_Field(c, 0) if sections and c in "[]" else c)
            i += 1
    return out


def _year(value: int, count: int) -> str:
    if count == 2:
        return f"{value % 100:02d}"
    return ("-" if value < 0 else "") + str(abs(value)).zfill(count)


def _joda_field(field: _Field, when: datetime, zone_id: str, millis: int) -> str:
    c, n = field.letter, field.count
    number: Callable[[int], str] = lambda v: str(v).zfill(n)  # noqa: E731
    if c == "y" or c == "Y":
        return _year(when.year, n)
    if c == "x":
        return _year(when.isocalendar().year, n)
    if c == "G":
        return "AD"
    if c == "C":
        return number(when.year // 100)
    if c == "M":
        if n >= 3:
            name = _MONTHS[when.month - 1]
            return name if n >= 4 else name[:3]
        return number(when.month)
    if c == "d":
        return number(when.day)
    if c == "D":
        return number(when.timetuple().tm_yday)
    if c == "w":
        return number(when.isocalendar().week)
    if c == "e":
        return number(when.isoweekday())
    if c == "E":
        name = _DAYS[when.weekday()]
        return name if n >= 4 else name[:3]
    if c == "a":
        return "AM" if when.hour < 12 else "PM"
    if c == "H":
        return number(when.hour)
    if c == "k":
        return number(when.hour or 24)
    if c == "K":
        return number(when.hour % 12)
    if c == "h":
        return number(when.hour % 12 or 12)
    if c == "m":
        return number(when.minute)
    if c == "s":
        return number(when.second)
    if c == "S":
        return f"{millis:03d}".ljust(n, "0")[:n]
    if c == "z":
        return _zone_name(when, zone_id)
    # "Z": offset without, then with a colon; three or more: the zone's ID.
    if n >= 3:
        return zone_id
    return _offset_text(when, colon=n == 2)


_JODA_LETTERS = "GCYxwEeyDMdaKhHkmsSzZ"


def format_joda(pattern: str, epoch_ms: int, zone_id: str = "UTC") -> str | None:
    """``epoch_ms`` in ``zone_id`` written with a Joda-Time pattern; None for an unknown
    zone or pattern letter."""
    tz = zone(zone_id)
    tokens = _tokens(pattern, _JODA_LETTERS)
    if tz is None or tokens is None:
        return None
    try:
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)
    except OverflowError:
        return None
    when = when.astimezone(tz)
    if tz is UTC or zone_id in ("UTC", "Z"):
        zone_id = "UTC"
    millis = epoch_ms % 1000
    return "".join(
        t if isinstance(t, str) else _joda_field(t, when, zone_id, millis) for t in tokens
    )


# -- JDK 11 DateTimeFormatter parsing (time_to_epoch) ----------------------------------
# Short zone names Java's English zone-name table resolves to a region (then that
# region's rules apply: "PST" in July is read as Pacific daylight time, as Java does).
_ZONE_NAMES = {
    "UTC": "UTC",
    "GMT": "UTC",
    "Z": "UTC",
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "MST": "America/Denver",
    "MDT": "America/Denver",
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "AKST": "America/Anchorage",
    "AKDT": "America/Anchorage",
    "HST": "Pacific/Honolulu",
    "BST": "Europe/London",
    "CET": "Europe/Paris",
    "CEST": "Europe/Paris",
    "EET": "Europe/Athens",
    "EEST": "Europe/Athens",
    "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo",
}
_JAVA_LETTERS = "GuyDMLdEahKkHmsSVzOXxZ"
_ZONE_ID = r"[A-Za-z][A-Za-z0-9_/+\-:]*"


def _java_regex(field: _Field) -> str | None:
    c, n = field.letter, field.count
    name = f"{c}{n}"
    if c in "yu":
        digits = r"\d{2}" if n == 2 else ("[+-]?\\d{" + str(max(n, 1)) + ",19}")
    elif c in "ML":
        if n >= 3:
            names = _MONTHS if n == 4 else [m[:3] for m in _MONTHS]
            digits = "|".join(names) if n <= 4 else "[A-Z]"
        else:
            digits = r"\d{2}" if n == 2 else r"\d{1,19}"
    elif c in "dhKkHms":
        if n > 2:
            return None
        digits = r"\d{2}" if n == 2 else r"\d{1,19}"
    elif c == "D":
        if n > 3:
            return None
        digits = r"\d{" + str(n) + ",3}"
    elif c == "S":
        digits = r"\d{" + str(n) + "}"
    elif c == "E":
        digits = "|".join(_DAYS if n == 4 else [d[:3] for d in _DAYS])
    elif c == "G":
        digits = "AD|BC" if n <= 3 else "Anno Domini|Before Christ"
    elif c == "a":
        digits = "AM|PM"
    elif c == "V":
        if n != 2:
            return None
        digits = _ZONE_ID
    elif c == "z":
        digits = _ZONE_ID
    elif c in "XxZO":
        digits = r"Z|GMT|UTC|(?:GMT|UTC)?[+-]\d{1,2}(?::?\d{2}){0,2}"
    else:  # pragma: no cover - _JAVA_LETTERS lists only the letters above
        return None
    return f"(?P<{name}>{digits})"


@lru_cache(maxsize=256)
def _java_pattern(pattern: str) -> tuple[re.Pattern[str], tuple[_Field, ...]] | None:
    tokens = _tokens(pattern, _JAVA_LETTERS, sections=True)
    if tokens is None:
        return None
    parts: list[str] = []
    fields: list[_Field] = []
    depth = 0  # open optional sections; Java closes those left open at the end
    for t in tokens:
        if isinstance(t, str):
            parts.append(re.escape(t))
            continue
        if t.count == 0:  # an optional section
            depth += 1 if t.letter == "[" else -1
            if depth < 0:  # "]" without "[": Java refuses the pattern
                return None
            parts.append("(?:" if t.letter == "[" else ")?")
            continue
        if any(f.letter == t.letter and f.count == t.count for f in fields):
            return None  # a field twice: Java refuses it too
        regex = _java_regex(t)
        if regex is None:
            return None
        parts.append(regex)
        fields.append(t)
    return re.compile("".join(parts) + ")?" * depth), tuple(fields)


def _offset_zone(text: str) -> tzinfo | None:
    if text in ("Z", "GMT", "UTC"):
        return UTC
    for prefix in ("GMT", "UTC"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return _fixed(text)


def parse_java(text: str, pattern: str) -> int | None:
    """Milliseconds since the epoch of ``text`` read with a JDK 11 pattern, UTC unless it
    names a zone; None if it does not match or names no whole date."""
    compiled = _java_pattern(pattern)
    if compiled is None:
        return None
    regex, fields = compiled
    m = regex.fullmatch(text)
    if m is None:
        return None
    present = [(f, m.group(f"{f.letter}{f.count}")) for f in fields]
    got = {f.letter: text for f, text in present if text is not None}
    counts = {f.letter: f.count for f, text in present if text is not None}
    try:
        when = _resolve(got, counts)
    except (ValueError, OverflowError, KeyError):
        return None
    if when is None:
        return None
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _resolve(got: dict[str, str], counts: dict[str, int]) -> datetime | None:
    year_text = got.get("u", got.get("y"))
    if year_text is None:
        return None
    year = int(year_text)
    if counts.get("u", counts.get("y")) == 2:
        year += 2000
    if got.get("G") in ("BC", "Before Christ"):
        year = 1 - year
    if "D" in got:
        day = date(year, 1, 1) + timedelta(days=int(got["D"]) - 1)
        if day.year != year:
            return None
    else:
        month_text = got.get("M", got.get("L"))
        if month_text is None or "d" not in got:
            return None
        month = _month(month_text)
        dom = int(got["d"])
        if 28 < dom <= 31:  # Java's SMART resolver: Feb 30 is the last day of February
            dom = min(dom, ((date(year + month // 12, month % 12 + 1, 1)) - timedelta(1)).day)
        day = date(year, month, dom)
    if "E" in got and _DAYS[day.weekday()][: len(got["E"])] != got["E"]:
        return None
    hour = _hour(got)
    minute, second = int(got.get("m", 0)), int(got.get("s", 0))
    micros = int((got.get("S", "") + "000000")[:6])
    tz: tzinfo | None = UTC
    for letter in "XxZO":
        if letter in got:
            tz = _offset_zone(got[letter])
    if "V" in got or "z" in got:
        zone_text = got.get("V") or got["z"]
        tz = zone(_ZONE_NAMES.get(zone_text, zone_text))
    if tz is None:
        return None
    local = datetime(day.year, day.month, day.day, hour, minute, second, micros)
    return local.replace(tzinfo=tz)


def _month(text: str) -> int:
    if text.isdigit():
        return int(text)
    return [m[: len(text)] for m in _MONTHS].index(text) + 1


def _hour(got: dict[str, str]) -> int:
    if "H" in got:
        return int(got["H"])
    if "k" in got:
        k = int(got["k"])
        if not 1 <= k <= 24:
            raise ValueError("clock hour of day")
        return k % 24
    if ("h" in got or "K" in got) and "a" not in got:
        raise ValueError("an hour of am/pm without am/pm")  # Java cannot make a time of it
    pm = got.get("a") == "PM"
    if "h" in got:
        h = int(got["h"])
        if not 1 <= h <= 12:
            raise ValueError("clock hour of am/pm")
        return h % 12 + (12 if pm else 0)
    if "K" in got:
        k = int(got["K"])
        if not 0 <= k <= 11:
            raise ValueError("hour of am/pm")
        return k + (12 if pm else 0)
    return 0
