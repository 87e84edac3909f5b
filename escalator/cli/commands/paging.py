"""`escalator test-page PERSON [--method sms|voice|email]`: check a person's contact methods.

Sends a test page straight through the configured channel (the real provider), outside
the outbox and without a database, so it works before the daemon ever ran; each method
reports sent or the provider's reason. A method of the person's page rules whose channel
is not configured here is reported as skipped, not failed: exit status 0 when every
configured method worked (and at least one did), 1 otherwise. A method asked for with
--method must work.
"""

from __future__ import annotations

import sys

import click

from escalator.cli.support import Context, pass_ctx


@click.command("test-page")
@click.argument("person_id", metavar="PERSON")
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(["sms", "voice", "email"]),
    help="Method to test (repeatable); default: every method in the person's page rules.",
)
@pass_ctx
def test_page(ctx: Context, person_id: str, methods: tuple[str, ...]) -> None:
    """Send a test page to PERSON by SMS, voice and/or email."""
    from escalator.daemon import build_channels
    from escalator.notify.channels.base import Delivery, Message

    config = ctx.config()
    assert config is not None
    person = config.person(person_id)
    if person is None:
        raise click.BadParameter(f"unknown person {person_id!r}", param_hint="PERSON")
    try:
        channels = build_channels(config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    wanted = list(methods) or list(
        dict.fromkeys(r.method for r in person.rules.get("page", []) if r.method != "console")
    )
    failed = False
    sent = 0
    for method in wanted:
        address = person.address(method)
        channel = channels.get(method)
        if address is None:
            click.echo(f"-- {method}: {person.id} has no address for {method}")
            failed = True
            continue
        if channel is None:
            if methods:  # asked for by name: that it cannot be sent is a failure
                click.echo(f"-- {method}: no channel configured (see channels: in the config)")
                failed = True
            else:
                click.echo(f"skipped {method}: no channel configured (see channels: in the config)")
            continue
        delivery = Delivery(
            id=0,
            alert_id=None,
            recipient_kind="person",
            recipient=person.id,
            method=method,
            address=address,
            level=None,
            urgency="page",
            reason="test page",
            attempts=1,
        )
        message = Message(
            None,
            "escalator test page",
            f"This is a test page from escalator for {person.display}. No action is needed.",
            "test page: nothing to acknowledge",
        )
        try:
            result = channel.send(delivery, message)
        except Exception as exc:  # report, do not crash: the next method may still work
            click.echo(f"-- {method} to {address}: {type(exc).__name__}: {exc}")
            failed = True
            continue
        mark = "ok" if result.outcome == "sent" else "--"
        click.echo(f"{mark} {method} to {address}: {result.outcome} {result.detail}".rstrip())
        failed |= result.outcome != "sent"
        sent += result.outcome == "sent"
    if not sent and not failed:
        click.echo(f"-- nothing sent: no configured method reaches {person.id}")
    if failed or not sent:
        sys.exit(1)


COMMANDS = [test_page]
