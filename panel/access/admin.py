"""Access is managed through the panel and the API (services audit every change); the Django
admin site is not mounted."""
