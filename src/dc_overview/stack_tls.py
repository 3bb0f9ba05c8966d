"""The proxy's self-signed certificate (when Let's Encrypt is not used).

Made once and kept: a browser that was told to trust it keeps trusting it.
It is made anew only when it is missing, unreadable, expires within 30 days,
or does not name the configured domain.
"""

from __future__ import annotations

import datetime
import ipaddress

VALID_DAYS = 825  # the longest validity browsers accept
RENEW_BEFORE = datetime.timedelta(days=30)


def certificate_is_usable(pem: bytes | None, names: list[str], now: datetime.datetime) -> bool:
    from cryptography import x509  # here, not at import: most commands make no certificate

    if not pem:
        return False
    try:
        cert = x509.load_pem_x509_certificate(pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    present = {str(v) for v in sans.get_values_for_type(x509.DNSName)}
    present |= {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
    return cert.not_valid_after_utc - now > RENEW_BEFORE and set(names) <= present


def self_signed_certificate(names: list[str], now: datetime.datetime) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for ``names`` (host names or IP addresses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dc-overview (self-signed)"),
    ])
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def certificate_names(domain: str | None) -> list[str]:
    return ([domain] if domain else []) + ["localhost", "127.0.0.1"]
