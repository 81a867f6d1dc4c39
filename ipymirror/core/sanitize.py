"""Neutralise terminal control sequences in untrusted kernel output.

Peers' output is printed straight into our terminal, so it is hostile input: an
OSC 52 could write the clipboard, CSI sequences could move the cursor over our
prompt, bidi overrides could disguise text.  Only colour (SGR) is let through.

Rules for ``sanitize`` (what may reach a real terminal):

* KEEP printable text (any Unicode not listed below), ``\\n``, ``\\t``, ``\\r``
  (carriage returns are handled by a later stage) and SGR ``ESC [ [0-9;:]* m``
  exactly as written (16/256/truecolor, ``;`` and ``:`` forms).
* DROP string sequences with their payload: OSC ``ESC ]``, DCS ``ESC P``,
  SOS ``ESC X``, PM ``ESC ^``, APC ``ESC _`` and the 8-bit introducers
  ``\\x9d \\x90 \\x98 \\x9e \\x9f``, up to BEL, ST (``ESC \\``) or ``\\x9c``.
  Unterminated: drop to the end of the text (never leak the payload).
* DROP every other CSI (``ESC [`` or ``\\x9b``, params ``[0-?]*``,
  intermediates ``[ -/]*``, final ``[@-~]``), including SGR with other params
  (``ESC[?5m``), and every other escape ``ESC [ -/]* [0-~]``.  An ESC that
  starts nothing valid is dropped on its own.
* DROP C0 controls except ``\\n \\t \\r``, DEL, all C1 ``\\x80-\\x9f`` and the bidi
  embedding/override/isolate characters U+202A-U+202E, U+2066-U+2069.

Performance: a precompiled character-class search decides whether anything
may need to change (if not, the very same object is returned); otherwise a
single ``re.sub`` pass with a literal replacement runs at C speed.  Every ESC
in the input is either part of a kept SGR or removed, so the output cannot
contain any other escape, and ``sanitize`` is idempotent.
"""

from __future__ import annotations

import re

__all__ = ["has_sgr", "sanitize", "strip_sgr"]

_SGR_TAIL = r"\[[0-9;:]*+m"  # what follows ESC in a kept SGR
_STRING_END = r".*?(?:\x07|\x1b\\|\x9c|\Z)"  # lazy, DOTALL: BEL, ST, 8-bit ST or end
_INTRODUCERS = "\x90\x98\x9b\x9d\x9e\x9f"  # 8-bit DCS SOS CSI OSC PM APC
# Controls removed one by one.  ESC and the 8-bit introducers are left out so a
# run of controls can never swallow the start of a sequence (which would leak
# its payload, or eat the ESC of a following SGR).
_LONE_CONTROLS = (
    "\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x8f\x91-\x97\x99\x9a\x9c\u202a-\u202e\u2066-\u2069"
)

# Everything that must go.  Valid SGR is never matched, so the replacement is
# a literal "" and re.sub stays entirely in C (a group template such as r"\1"
# would call back into Python for every match on 3.11).
_DROP = re.compile(
    "|".join(
        (
            # An ESC that does not start a valid SGR, with what follows it.
            r"\x1b(?!"
            + _SGR_TAIL
            + ")(?:"
            + "|".join(
                (
                    r"[\]PX^_]" + _STRING_END,  # OSC DCS SOS PM APC + payload
                    r"\[[0-?]*+[ -/]*+[@-~]",  # any other CSI
                    r"[ -/]*+[0-~]",  # any other escape sequence
                    "",  # nothing valid: the ESC alone
                )
            )
            + ")",
            "[\x90\x98\x9d\x9e\x9f]" + _STRING_END,  # 8-bit string introducers
            r"\x9b(?:[0-?]*+[ -/]*+[@-~])?",  # 8-bit CSI (or just the \x9b)
            "[" + _LONE_CONTROLS + "]+",  # other C0/C1, DEL, bidi
        )
    ),
    re.DOTALL,
)

# Fast path, two stages.  A bare character class scans fastest, and plain text
# (the flood case) never gets past it.  Then, from the first suspect character,
# a cheap test for anything _DROP would match (an ESC not starting a valid SGR,
# or another control): merely coloured text stops here too.  Both stages are
# much faster than searching with _DROP itself (alternation, lazy payloads).
_SUSPECT = re.compile("[\x1b" + _INTRODUCERS + _LONE_CONTROLS + "]")
_UNSAFE = re.compile(r"\x1b(?!" + _SGR_TAIL + ")|[" + _INTRODUCERS + _LONE_CONTROLS + "]")

_SGR = re.compile(r"\x1b\[[0-9;:]*+m")


def sanitize(text: str) -> str:
    """Neutralise terminal control in untrusted text, keeping colours.

    Returns ``text`` itself when nothing needs changing, so the common case
    (plain or merely coloured output) costs a regex search and no copy.
    """
    suspect = _SUSPECT.search(text)
    if suspect is None or _UNSAFE.search(text, suspect.start()) is None:
        return text  # plain, or only valid SGR: same object, no copy
    return _DROP.sub("", text)


def strip_sgr(text: str) -> str:
    """Remove SGR colour sequences too (for --no-color / NO_COLOR / non-tty output).

    Input is already sanitised, so SGR is the only escape left to remove.
    """
    if "\x1b" not in text:
        return text
    return _SGR.sub("", text)


def has_sgr(text: str) -> bool:
    """Cheap test for callers that must append a reset after sanitised text."""
    return "\x1b" in text
