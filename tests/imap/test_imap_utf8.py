"""UTF8=ACCEPT (RFC 6855): UTF-8 mailbox names and strings once enabled; APPEND UTF8."""




def test_utf8_names_after_enable(raw):
    r = raw(login=True)
    r.send("a CREATE \"Ünïcode\"\r\n".encode())
    assert r.until(b"a")[-1].startswith(b"a NO")  # not valid modified UTF-7 before ENABLE
    r.send(b"b CREATE \"&ANw-ber\"\r\n")
    assert r.until(b"b")[-1].startswith(b"b OK")
    r.send(b"e ENABLE UTF8=ACCEPT\r\n")
    assert r.until(b"e")[0] == b"* ENABLED UTF8=ACCEPT\r\n"
    r.send("c CREATE \"Ünïcode\"\r\n".encode())
    assert r.until(b"c")[-1].startswith(b"c OK")
    r.send(b'l LIST "" "*"\r\n')
    listing = b"".join(r.until(b"l"))
    assert "\"Über\"".encode() in listing and "Ünïcode".encode() in listing
    assert b"&ANw-" not in listing
    r.send("s STATUS \"Ünïcode\" (MESSAGES)\r\n".encode())
    assert r.until(b"s")[-1].startswith(b"s OK")


def test_utf8_append_and_envelope(raw, store):
    r = raw(login=True)
    r.send(b"e ENABLE UTF8=ACCEPT\r\n")
    r.until(b"e")
    msg = "From: Jörg <j@example.com>\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()
    r.send(b"a APPEND INBOX UTF8 (~{%d+}\r\n%s)\r\n" % (len(msg), msg))
    assert r.until(b"a")[-1].startswith(b"a OK [APPENDUID")
    r.send(b"s SELECT INBOX\r\nf FETCH 1 (ENVELOPE)\r\n")
    r.until(b"s")
    line = r.until(b"f")[0]
    assert "\"Grüße\"".encode() in line and "((\"Jörg\" NIL \"j\" \"example.com\"))".encode() in line


def test_utf8_append_needs_enable(raw):
    r = raw(login=True)
    r.send(b"a APPEND INBOX UTF8 (~{3+}\r\nabc)\r\n")
    assert r.until(b"a")[-1].startswith(b"a BAD")
