"""Tenancy in renkei.toml: sources with their municipalities and tokens, destinations bound
to a municipality, and the mistakes that would let two municipalities mix."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from tenant_fixtures import TOKEN_A, TOKEN_B, A, B, write_tenant_config

from bus.cli.config import route_destinations
from bus.errors import ConfigError
from bus.settings import Settings
from bus.tenancy import hash_token


def test_a_two_municipality_config_binds_sources_and_destinations(tmp_path: Path) -> None:
    """Each source has its municipalities, its token digest, inbox and broker user; each
    destination its system and municipality."""
    settings = Settings.load(write_tenant_config(tmp_path), env={})
    a, b = settings.sources["jumin-a"], settings.sources["jumin-b"]
    assert a.municipalities == (A,) and b.municipalities == (B,)
    assert a.token_sha256s == (hashlib.sha256(TOKEN_A.encode()).digest(),)
    assert b.token_sha256s == (hashlib.sha256(TOKEN_B.encode()).digest(),)  # configured as sha256:…
    assert a.inbox == tmp_path / "inbox" / "jumin-a" and a.amqp_user == "vendor-jumin-a"
    zei_a = settings.destinations[f"zei-{A}"]
    assert (zei_a.system, zei_a.municipalities) == ("zei", frozenset({A}))
    assert "system" not in zei_a.options and "municipality" not in zei_a.options
    assert settings.multi_tenant


def test_no_token_is_kept_in_the_settings(tmp_path: Path) -> None:
    """Only the digest: neither the token nor its hex digest shows in the settings' repr."""
    settings = Settings.load(write_tenant_config(tmp_path), env={})
    text = repr(settings)
    assert TOKEN_A not in text and hashlib.sha256(TOKEN_A.encode()).hexdigest() not in text


def test_the_environment_gives_a_token_instead_of_the_file(tmp_path: Path) -> None:
    other = "env-token-" + "x" * 40
    settings = Settings.load(write_tenant_config(tmp_path), env={"RENKEI_SOURCE_JUMIN_A_TOKEN": other})
    assert settings.sources["jumin-a"].token_sha256s == (hashlib.sha256(other.encode()).digest(),)


def test_a_token_file_may_hold_two_tokens_while_one_is_rotated(tmp_path: Path) -> None:
    """One per line, comments and blank lines aside; the old token and the new one's hash."""
    config = write_tenant_config(tmp_path)
    new = "rotated-token-" + "n" * 40
    (tmp_path / "secrets" / "jumin-a.token").write_text(
        f"# the old token, until 2026-12-31\n{TOKEN_A}\n\n# the new one\n{hash_token(new)}\n", encoding="utf-8")
    settings = Settings.load(config, env={})
    assert settings.sources["jumin-a"].token_sha256s == tuple(
        hashlib.sha256(t.encode()).digest() for t in (TOKEN_A, new))
    both = Settings.load(config, env={"RENKEI_SOURCE_JUMIN_A_TOKEN": f"{TOKEN_A} {new}"})  # a variable: spaces
    assert both.sources["jumin-a"].token_sha256s == settings.sources["jumin-a"].token_sha256s


@pytest.mark.parametrize(("text", "message"), [
    (f"{TOKEN_A}\nsecret\n", r"token: entry 2: a token is at least 32"),
    (f"{TOKEN_A}\n{hash_token(TOKEN_A)}\n", r"token: entry 2 is the same token as entry 1"),
    ("# only a comment\n", r"token: no token in it"),
])
def test_a_bad_entry_of_a_token_file_is_refused_with_which_one(tmp_path: Path, text: str, message: str) -> None:
    config = write_tenant_config(tmp_path)
    (tmp_path / "secrets" / "jumin-a.token").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"renkei.toml:\d+: \[sources.jumin-a\] " + message):
        Settings.load(config, env={})


def test_a_short_token_is_refused_with_where_it_came_from(tmp_path: Path) -> None:
    config = write_tenant_config(tmp_path)
    (tmp_path / "secrets" / "jumin-a.token").write_text("secret", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"renkei.toml:\d+: \[sources.jumin-a\] token: a token is at least 32"):
        Settings.load(config, env={})


@pytest.mark.parametrize(("extra", "message"), [
    ('[destinations.shared]\ntransport = "http"\nurl = "http://127.0.0.1:9/messages"\n',
     r"\[destinations.shared\] needs municipality"),
    ('[destinations.zei-x]\ntransport = "http"\nurl = "http://x/messages"\nmunicipality = "011002"\n',
     r"municipalities 011002 are not served by this bus"),
    ('[destinations.zei-y]\ntransport = "http"\nurl = "http://x/messages"\nmunicipality = "131017"\n',
     r"地方公共団体コード"),
    ('[sources.kiban]\nmunicipalities = ["131016"]\n', r"\[sources.kiban\] has no way to submit"),
    ('[sources.kiban]\nmunicipalities = ["011002"]\ninbox = "x"\n', r"011002 are not served"),
    ('[sources.kiban]\nmunicipalities = []\ninbox = "x"\n', r"\[sources.kiban\] municipalities must be"),
    ('[sources.kiban]\nmunicipalities = ["131016"]\namqp_user = "vendor-jumin-a"\n', r"share one amqp_user"),
])
def test_configs_that_would_mix_municipalities_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    """A destination of no municipality in a shared bus, codes the bus does not serve,
    a source that cannot authenticate, one broker user for two sources: each a ConfigError."""
    with pytest.raises(ConfigError, match=message):
        Settings.load(write_tenant_config(tmp_path, extra="\n" + extra), env={})


def test_a_shared_inbox_is_refused_once_sources_are_configured(tmp_path: Path) -> None:
    config = write_tenant_config(tmp_path)
    config.write_text(config.read_text().replace("http_port = 0", 'http_port = 0\ninbox = "inbox"'))
    with pytest.raises(ConfigError, match=r"\[intake\] inbox is a source of no one"):
        Settings.load(config, env={})


def test_https_needs_both_the_certificate_and_the_key(tmp_path: Path) -> None:
    config = write_tenant_config(tmp_path)
    (tmp_path / "cert.pem").write_text("x")
    config.write_text(config.read_text().replace("http_port = 0", 'http_port = 0\ntls_cert_file = "cert.pem"'))
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file go together"):
        Settings.load(config, env={})


def test_the_model_in_docs_tenants_md_is_a_config_that_loads(tmp_path: Path) -> None:
    """The first TOML block of docs/tenants.md, as an integrator would copy it."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "tenants.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", text, re.DOTALL)
    assert block is not None
    (tmp_path / "renkei.toml").write_text(block.group(1), encoding="utf-8")
    settings = Settings.load(tmp_path / "renkei.toml", env={})
    assert settings.multi_tenant
    assert {(d.name, d.system, tuple(d.municipalities or ())) for d in settings.destinations.values()} == {
        ("zei-131016", "zei", ("131016",)), ("zei-271004", "zei", ("271004",))}


def test_status_and_run_see_each_municipalitys_destinations_not_the_systems(tmp_path: Path) -> None:
    """The queues are per destination: `renkei status` asks for zei-131016 …, never for a shared `zei`."""
    settings = Settings.load(write_tenant_config(tmp_path), env={})
    assert route_destinations("status", settings) == [f"kokuho-{A}", f"kokuho-{B}", f"zei-{A}", f"zei-{B}"]


def test_an_amqp_intake_without_amqp_sources_is_refused(tmp_path: Path) -> None:
    config = write_tenant_config(tmp_path)
    text = config.read_text().replace('amqp_user = "vendor-jumin-a"\n', "").replace(
        'amqp_user = "vendor-jumin-b"\n', "")
    config.write_text(text.replace("http_port = 0", 'http_port = 0\namqp_vhosts = { "131016" = "v-a" }')
                      .replace("[bus]", '[bus]\nbroker_url = "amqp://x@127.0.0.1/core"'))
    with pytest.raises(ConfigError, match="amqp_vhosts needs sources that publish over AMQP"):
        Settings.load(config, env={})
