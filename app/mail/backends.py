"""Mail transports chosen by ``MAIL_URL``: ``console`` or ``smtp://`` / ``smtps://``."""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Protocol
from urllib.parse import urlsplit

from config import SMTPSettings, smtp_settings

log = logging.getLogger(__name__)

# How long each reply about the message itself is waited for (to MAIL, RCPT, DATA and the
# end of the data), when MAIL_URL's timeout is shorter: RFC 5321 §4.5.3.2 recommends 5
# minutes for MAIL and RCPT and 10 for the end of the data. MAIL_URL's timeout still bounds
# connecting, TLS and login.
MESSAGE_TIMEOUT = 300.0


@dataclass(frozen=True)
class Mail:
    sender: str
    to: str
    subject: str
    text_body: str
    html_body: str | None = None
    # What makes the Message-ID: the same for every attempt at one mail, so that a receiver
    # can drop the copy an at-least-once delivery may rarely send twice.
    key: str | None = None

    def as_message(self) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = self.to
        message["Subject"] = self.subject
        # RFC 5322 requires a Date; spam filters mark down a mail without a Message-ID.
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = self.message_id()
        message.set_content(self.text_body)
        if self.html_body:
            message.add_alternative(self.html_body, subtype="html")
        return message

    def message_id(self) -> str:
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "localhost"
        return f"<{self.key}@{domain}>" if self.key else make_msgid(domain=domain)


class MailBackend(Protocol):
    def send(self, mail: Mail) -> None: ...


class ConsoleBackend:
    """Logs the mail instead of sending it (the embedded default)."""

    def send(self, mail: Mail) -> None:
        log.info("mail to %s: %s\n%s", mail.to, mail.subject, mail.text_body, extra={"mail_to": mail.to})


@dataclass(frozen=True)
class SMTPBackend(SMTPSettings):
    """``smtp://user:pass@host:587?starttls=true`` or ``smtps://user:pass@host:465``: the
    settings config.smtp_settings reads from ``MAIL_URL``, and a way to send with them."""

    @classmethod
    def from_url(cls, url: str) -> SMTPBackend:
        """The backend ``url`` names (read by config.smtp_settings: ValueError if wrong)."""
        return cls(**asdict(smtp_settings(url)))

    def send(self, mail: Mail) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.use_ssl:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self.password or "")
            # From here on the server may take its time (it can be scanning the mail before it
            # answers the end of the data): giving up on a reply it then sends means a retry
            # that delivers the mail again.
            assert client.sock is not None  # connected by the constructor
            client.sock.settimeout(max(self.timeout, MESSAGE_TIMEOUT))
            client.send_message(mail.as_message())
        except BaseException:
            client.close()
            raise
        # The server answered the end of the data with 250: it has the mail. Ending the
        # session is a courtesy; a failure now (a 421 to QUIT, a dropped connection) must not
        # fail the delivery, whose retry would send the mail again.
        try:
            code, reply = client.docmd("QUIT")
            if code != 221:
                log.warning("mail %s sent; the server answered QUIT with %d %r", mail.key, code, reply)
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("mail %s sent; ending the SMTP session failed: %s", mail.key, exc)
        finally:
            client.close()


def backend_for(url: str) -> MailBackend:
    scheme = urlsplit(url).scheme
    if url == "console" or scheme == "console":
        return ConsoleBackend()
    if scheme in {"smtp", "smtps"}:
        return SMTPBackend.from_url(url)
    raise ValueError(f"its scheme is {scheme!r}")
