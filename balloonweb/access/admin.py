"""Teams in Django's admin, for superusers. Changes here are audited like any other (signals.py)."""

from django.contrib import admin

from .models import Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "operator_max_kib", "quota_kib"]
    search_fields = ["name"]
    inlines = [MembershipInline]
