"""A URL is shown without its password, a cluster URL of several hosts included."""

from bus.status import display_url
from bus.urls import without_password


def test_a_cluster_url_of_several_hosts_is_shown_without_its_password() -> None:
    # before: `renkei run` and `renkei status` raised ValueError on such a URL (urllib cannot parse its port)
    assert display_url("amqp://renkei:secret@h1:5672,h2:5673/v") == "amqp://renkei:***@h1:5672,h2:5673/v"


def test_a_url_without_a_password_is_shown_as_it_is() -> None:
    assert without_password("amqp://127.0.0.1:5672/") == "amqp://127.0.0.1:5672/"
    assert without_password("amqp://guest@127.0.0.1/") == "amqp://guest@127.0.0.1/"
    assert "secret" not in without_password("postgresql://u:secret@db:5432/renkei")
