"""Loopback fakes of the providers escalator pages through: Twilio's REST API (which the
real twilio SDK talks to), an SMTP server with STARTTLS and auth, and a chat webhook.

They are real servers on 127.0.0.1, so the real client code paths run; each records what
it received and can fail on demand.
"""
