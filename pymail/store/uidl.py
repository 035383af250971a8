"""POP3 UIDLs the way Dovecot expands ``pop3_uidl_format`` (default ``%08Xu%08Xv``).

Dovecot's variable syntax (var-expand.c): ``%`` [``0``][width] [modifiers] letter.  Letters:
``u`` UID, ``v`` UIDVALIDITY, ``m`` MD5 of the header (hex), ``f`` maildir base file name,
``g`` GUID, ``%`` a percent sign.  Modifiers: ``X`` hexadecimal — printed in *lower case*
(``%llx``; a live Dovecot 2.3.19 answers ``000000016b0cd75f`` for UID 1 under the default
format, tests/store/test_store_dovecot_live.py), ``U`` upper case, ``L`` lower case.  ``x`` is
taken as ``X``.  Unknown letters are copied unchanged.
"""

from __future__ import annotations


def expand_uidl(fmt: str, uid: int, uidvalidity: int, base: str, guid: str, md5) -> str:
    out = []
    i, n = 0, len(fmt)
    while i < n:
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        j = i + 1
        width = ""
        while j < n and fmt[j].isdigit():
            width += fmt[j]
            j += 1
        modifiers = ""
        while j < n and fmt[j] in "XxUL":
            modifiers += fmt[j].upper()
            j += 1
        if j >= n:
            out.append(fmt[i:])
            break
        var = fmt[j]
        values = {"u": uid, "v": uidvalidity, "f": base, "g": guid}
        if var == "%":
            value: str | int = "%"
        elif var in values:
            value = values[var]
        elif var == "m":
            value = md5()
        else:
            out.append(fmt[i:j + 1])
            i = j + 1
            continue
        if "X" in modifiers and isinstance(value, int):
            text = format(value, "x")
        else:
            text = str(value)
        if "U" in modifiers:
            text = text.upper()
        elif "L" in modifiers:
            text = text.lower()
        if width:
            text = text.rjust(int(width), "0" if width.startswith("0") else " ")
        out.append(text)
        i = j + 1
    return "".join(out)
