import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the superuser 'admin' with a random password if there is no user yet, and say how to log in."

    def handle(self, *args, **options):
        users = get_user_model().objects
        password_file = settings.STATE_DIR / "admin-password"
        if not users.exists():
            password = secrets.token_urlsafe(12)
            users.create_superuser("admin", "", password)
            settings.STATE_DIR.mkdir(parents=True, exist_ok=True)
            password_file.touch(mode=0o600)
            password_file.write_text(password + "\n")
        if password_file.exists():
            self.stdout.write(f"log in as admin with the password in {password_file}: {password_file.read_text().strip()}")
