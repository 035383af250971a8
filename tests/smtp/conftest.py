import pytest

from pymail.smtp.testing import MailSystem


@pytest.fixture
def mailsys(reactor, tmp_path, tls_context):
    system = MailSystem(tmp_path, tls=tls_context)
    system.add_user("alice@example.org")
    system.add_user("bob@example.org")
    system.directory.add_alias("sales@example.org", ["alice@example.org"])
    yield system
    system.close()
