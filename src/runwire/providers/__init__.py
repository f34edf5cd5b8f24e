"""Model providers: pure encoders/decoders (``runwire.providers.encoders``) and
the adapters that call the providers' APIs with them."""
