"""`manage.py apitoken create USER NAME [--write] [--expires-days N]`, `apitoken list [USER]`, `apitoken revoke PREFIX`:
the first token of a fresh install, and tokens for scripts set up from the shell."""


from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from balloonweb.access.actors import Actor
from balloonweb.api import tokens
from balloonweb.api.models import ApiToken


class Command(BaseCommand):
    help = "Create, list and revoke API tokens."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="command", required=True)
        create = sub.add_parser("create", help="create a token and print it (only this once)")
        create.add_argument("user")
        create.add_argument("name")
        create.add_argument("--write", action="store_true", help="read-write (default: read-only)")
        create.add_argument("--expires-days", type=int, default=None)
        listing = sub.add_parser("list", help="list tokens (never their secrets)")
        listing.add_argument("user", nargs="?")
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix (bw_xxxxxxxxxxxx)")
        revoke.add_argument("prefix")

    def handle(self, *args, command, **options):
        actor = Actor.command_line()
        if command == "create":
            user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
            if user is None:
                raise CommandError(f"no active user named {options['user']}")
            try:
                _, text = tokens.create_token(actor, user, options["name"], write=options["write"],
                                              expires=tokens.expiry(options["expires_days"]))
            except tokens.TokenError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(text)
        elif command == "list":
            rows = ApiToken.objects.select_related("user").order_by("id")
            if options["user"]:
                rows = rows.filter(user__username=options["user"])
            for token in rows:
                state = "revoked" if token.revoked else ("expired" if not token.is_active() else "active")
                self.stdout.write(f"bw_{token.prefix}  {token.user.get_username()}  {token.name}  {token.scope}  {state}")
        else:
            prefix = options["prefix"].removeprefix(tokens.TOKEN_START).split("_")[0]
            token = ApiToken.objects.filter(prefix=prefix).first()
            if token is None:
                raise CommandError(f"no token {options['prefix']}")
            tokens.revoke_token(actor, token)
            self.stdout.write(f"bw_{token.prefix} revoked")
