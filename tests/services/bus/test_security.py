"""The TLS/SASL client configuration (services/bus/security.py), without a broker.

What the real broker can exercise is in tests/integration/test_security.py. Tansu offers no
PLAIN mechanism and cannot hold a SCRAM user while authentication is on (see the README, "TLS
and SASL"), so a successful SASL login is checked here, as the kwargs every client gets.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from services.bus.kafka import KafkaBus
from services.bus.security import BrokerSecurity, SecurityConfigError


@pytest.fixture(scope="module")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("qas-client")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


def test_plaintext_is_the_default_and_adds_nothing_else() -> None:
    assert BrokerSecurity().client_kwargs() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_gives_every_client_a_verifying_context_and_the_credentials(
    ca_files: tuple[Path, Path, Path], mechanism: str
) -> None:
    ca, cert, key = ca_files
    sec = BrokerSecurity("SASL_SSL", ssl_cafile=ca, ssl_certfile=cert, ssl_keyfile=key,
                         sasl_mechanism=mechanism, sasl_username="qas-applier",
                         sasl_password="s3cret-pw")  # fmt: skip
    kw = sec.client_kwargs()
    ctx = kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1  # exactly the given CA, not the system store
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == mechanism
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("qas-applier", "s3cret-pw")
    assert "s3cret-pw" not in repr(sec)
    bus = KafkaBus("127.0.0.1:9", security=sec)  # what the producer, consumers and admin get
    opts = bus.producer_options(False)
    assert opts["sasl_mechanism"] == mechanism and isinstance(opts["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize(
    ("sec", "message"),
    [
        (BrokerSecurity("TLS"), "must be one of"),
        (BrokerSecurity("PLAINTEXT", ssl_cafile=Path("ca.pem")), "--ssl-cafile needs"),
        (BrokerSecurity("SSL", ssl_keyfile=Path("k.pem")), "--ssl-keyfile needs --ssl-certfile"),
        (BrokerSecurity("SSL", sasl_username="u"), "need --security-protocol SASL_"),
        (BrokerSecurity("SASL_PLAINTEXT", sasl_username="u", sasl_password="p"),
         "--sasl-mechanism must be one of"),
        (BrokerSecurity("SASL_SSL", sasl_mechanism="GSSAPI", sasl_username="u", sasl_password="p"),
         "--sasl-mechanism must be one of"),
        (BrokerSecurity("SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_password="p"),
         "--sasl-username is required"),
        (BrokerSecurity("SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u"),
         "QAS_SASL_PASSWORD or --sasl-password-file"),
        (BrokerSecurity("SSL", ssl_cafile=Path("/nonexistent/ca.pem")),
         "cannot load TLS files (/nonexistent/ca.pem)"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_one_line_errors(sec: BrokerSecurity, message: str) -> None:
    with pytest.raises(SecurityConfigError) as info:
        KafkaBus("127.0.0.1:9", security=sec)
    assert message in str(info.value) and "\n" not in str(info.value)
