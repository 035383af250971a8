"""POP3 UIDLs the way Dovecot formats ``pop3_uidl_format`` (default ``%08Xu%08Xv``)."""

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
        spec = ""
        while j < n and (fmt[j].isdigit()):
            spec += fmt[j]
            j += 1
        hexa = ""
        if j < n and fmt[j] in "Xx":
            hexa = fmt[j]
            j += 1
        if j >= n:
            out.append(fmt[i:])
            break
        var = fmt[j]
        if var == "%":
            value: str | int = "%"
        elif var == "u":
            value = uid
        elif var == "v":
            value = uidvalidity
        elif var == "m":
            value = md5()
        elif var == "f":
            value = base
        elif var == "g":
            value = guid
        else:
            value = fmt[i:j + 1]
            out.append(value)
            i = j + 1
            continue
        if isinstance(value, int):
            text = format(value, hexa) if hexa else str(value)
        else:
            text = value
        if spec:
            width = int(spec)
            pad = "0" if spec.startswith("0") else " "
            text = text.rjust(width, pad)
        out.append(text)
        i = j + 1
    return "".join(out)
