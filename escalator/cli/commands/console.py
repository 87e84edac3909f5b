"""`escalator ui-token PERSON [--revoke]`: a personal login for the web console.

For deployments without an authenticating proxy: the token is printed once and stored
only hashed. Setting a new one ends every console session opened with the old one. Once
any person has a token, the console no longer lets loopback visitors in without one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from escalator.cli.support import Context, pass_ctx


@click.command("ui-token")
@click.argument("person_id", metavar="PERSON")
@click.option("--revoke", is_flag=True, help="Remove PERSON's token (and end their sessions).")
@pass_ctx
def ui_token(ctx: Context, person_id: str, revoke: bool) -> None:
    """Set (print once) or revoke PERSON's web console login token."""
    from escalator.store.db import transaction
    from escalator.web.ui.logins import revoke_token, set_token

    config = ctx.config()
    assert config is not None
    if config.person(person_id) is None:
        raise click.BadParameter(f"unknown person {person_id!r}", param_hint="PERSON")
    if ctx.server:
        raise click.UsageError("`escalator ui-token` works on the database: drop --server")
    engine, factory = ctx.local()
    try:
        with transaction(factory) as session:
            if revoke:
                found = revoke_token(session, person_id)
            else:
                token = set_token(session, person_id, datetime.now(UTC))
    finally:
        engine.dispose()
    if revoke:
        click.echo(f"{person_id}: console token revoked" if found else f"{person_id}: no token")
        return
    click.echo(token)
    click.echo(f"(console login for {person_id}; shown only now)", err=True)


COMMANDS = [ui_token]
