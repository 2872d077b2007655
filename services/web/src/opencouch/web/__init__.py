"""The voice web client: static pages and assets for ``/voice``, served with strict headers."""
