"""Dates and times typed into filters: the database keeps them in UTC, and an offset can carry a date that is
valid as typed past year 9999 or before year 1 there (9999-12-31T23:59-10:00), which overflows on conversion."""

from datetime import UTC

from django import forms
from django_filters.fields import IsoDateTimeField


class _FitsInUtc:
    def to_python(self, value):
        instant = super().to_python(value)
        try:
            if instant is not None:
                instant.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(
                f"{value} is out of range: give a date and time between the years 1 and 9999 in UTC", code="out_of_range",
            ) from None
        return instant


class InstantField(_FitsInUtc, forms.DateTimeField):
    """A date, or a date and time, as a person types it."""


class IsoInstantField(_FitsInUtc, IsoDateTimeField):
    """An ISO 8601 date and time, as a script sends it."""
