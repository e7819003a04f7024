"""Device identity: X.509 certificates and the local certificate authority."""
