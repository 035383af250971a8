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


@pytest.fixture(scope="module")
def mailsys_module(reactor, tmp_path_factory, tls_context):
    """One server for many generated sessions (property tests)."""
    system = MailSystem(tmp_path_factory.mktemp("fuzz"), tls=tls_context)
    system.add_user("alice@example.org")
    system.add_user("bob@example.org")
    system.stop_runner()
    port = system.listen("mx")
    yield system, port
    system.close()
