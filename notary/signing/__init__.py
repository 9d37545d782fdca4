"""Signing keys held outside notary's memory: a PKCS#11 token today, the same way a KMS or Vault key would.

What records need from such a key is `notary.keys.Signer` (sign bytes, give the public key; the key id is
derived from that public key, never taken from the backend). `notary.keys.load_private_key` opens a
`pkcs11:` URI through `notary.signing.pkcs11`, so every place that takes `--key` takes a token key too.
"""
