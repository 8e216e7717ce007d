"""TLS and SASL towards the broker: one settings object, turned into aiokafka's keyword arguments.

aiokafka takes TLS only as an ``ssl_context`` (``aiokafka.helpers.create_ssl_context``); SASL as
``sasl_mechanism`` and ``sasl_plain_username``/``sasl_plain_password`` (aiokafka's names for
PLAIN and SCRAM alike). The same kwargs go to every producer, consumer and admin client.

A refused TLS handshake or SASL login would otherwise surface as aiokafka's "Unable to bootstrap"
retried until the connect timeout, or as a KeyError from its SCRAM code; ``preflight`` opens one
connection with these settings first and turns a refusal into one line that says what to fix.
The password is never part of a repr, a log line or an error.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.helpers import create_ssl_context

from services.bus.base import BusError

PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


PASSWORD_VARIABLE: Final = "QAS_SASL_PASSWORD"


def sasl_password(password_file: Path | None) -> str | None:
    """The SASL password: from ``password_file`` (trailing newline dropped), else from
    QAS_SASL_PASSWORD. Never from a flag, so it does not show in ``ps``."""
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise SecurityConfigError(f"cannot read the SASL password file {password_file}: "
                                      f"{exc.strerror or exc}") from None  # fmt: skip
    return os.environ.get(PASSWORD_VARIABLE) or None


class SecurityConfigError(ValueError):
    """Settings that cannot work together, or a TLS file that cannot be loaded: one line."""


@dataclass(frozen=True)
class BrokerSecurity:
    protocol: str = "PLAINTEXT"
    ssl_cafile: Path | None = None  # None: the system's trusted CAs
    ssl_certfile: Path | None = None  # client certificate (mutual TLS), PEM
    ssl_keyfile: Path | None = None  # its key, when not inside the certificate file
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def check(self) -> None:
        """Raise SecurityConfigError for combinations that would silently not do what was asked."""
        if self.protocol not in PROTOCOLS:
            raise SecurityConfigError(f"security protocol must be one of {', '.join(PROTOCOLS)}, "
                                      f"got {self.protocol!r}")  # fmt: skip
        given_tls = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, n)]
        if given_tls and not self.tls:
            raise SecurityConfigError(f"--{given_tls[0].replace('_', '-')} needs "
                                      f"--security-protocol SSL or SASL_SSL, not {self.protocol}")  # fmt: skip
        if self.ssl_keyfile and not self.ssl_certfile:
            raise SecurityConfigError("--ssl-keyfile needs --ssl-certfile")
        given_sasl = [n for n in ("sasl_mechanism", "sasl_username", "sasl_password")
                      if getattr(self, n)]  # fmt: skip
        if given_sasl and not self.sasl:
            raise SecurityConfigError(f"SASL settings ({given_sasl[0].replace('_', '-')}) need "
                                      f"--security-protocol SASL_PLAINTEXT or SASL_SSL, not "
                                      f"{self.protocol}")  # fmt: skip
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise SecurityConfigError(f"--sasl-mechanism must be one of {', '.join(MECHANISMS)} "
                                          f"with {self.protocol}")  # fmt: skip
            if not self.sasl_username:
                raise SecurityConfigError(f"--sasl-username is required with {self.protocol}")
            if not self.sasl_password:
                raise SecurityConfigError(f"a SASL password is required with {self.protocol}: "
                                          "QAS_SASL_PASSWORD or --sasl-password-file")  # fmt: skip

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        try:
            ctx: ssl.SSLContext = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
            return ctx
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(str(p) for p in (self.ssl_cafile, self.ssl_certfile,
                                               self.ssl_keyfile) if p)  # fmt: skip
            detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise SecurityConfigError(f"cannot load TLS files ({files}): {detail}") from None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        self.check()
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.sasl:
            kwargs.update(sasl_mechanism=self.sasl_mechanism,
                          sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self.sasl_password)  # fmt: skip
        return kwargs


async def preflight(bootstrap: str, kwargs: dict[str, Any], timeout: float) -> None:
    """One connection to the first bootstrap server with ``kwargs``; a TLS or SASL refusal
    raises BusError at once. A broker that is not up yet is left to the clients' retries."""
    protocol = kwargs.get("security_protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    where = f"{host}:{port}"
    try:
        conn = await asyncio.wait_for(
            create_conn(host, int(port), client_id="qas-preflight",
                        request_timeout_ms=int(timeout * 1000), **kwargs),
            timeout,
        )  # fmt: skip
    except ssl.SSLCertVerificationError as exc:
        raise BusError(f"TLS: the broker at {where} presented a certificate this client does not "
                       f"trust ({exc.verify_message}); --ssl-cafile must name the CA that "
                       f"signed it") from None  # fmt: skip
    except ssl.SSLError as exc:
        raise BusError(f"TLS handshake with {where} failed ({exc.reason or exc}); is that "
                       f"listener TLS, and --security-protocol {protocol} right?") from None  # fmt: skip
    except (OSError, TimeoutError):
        return  # not listening (yet): the clients retry within --connect-timeout
    except (KafkaError, KeyError, ValueError) as exc:
        # KafkaConnectionError here: connected, then dropped mid-handshake; Tansu does that to
        # a mechanism it does not offer (PLAIN) instead of answering UNSUPPORTED_SASL_MECHANISM.
        if isinstance(exc, KafkaConnectionError) and not protocol.startswith("SASL_"):
            return
        if not protocol.startswith("SASL_"):
            raise BusError(f"Kafka at {where} refused the connection: {exc!r}") from None
        # aiokafka raises SaslAuthenticationFailed from Kafka, and a KeyError from its SCRAM
        # code when a broker (Tansu) ends the exchange with an error instead of a signature.
        raise BusError(f"SASL: the broker at {where} refused {kwargs.get('sasl_mechanism')} "
                       f"authentication as {kwargs.get('sasl_plain_username')!r} (wrong user or "
                       f"password, or a mechanism it does not offer: "
                       f"{type(exc).__name__})") from None  # fmt: skip
    conn.close()
