"""The Berth panel: the Django project that holds desired state and serves the UI and API."""
