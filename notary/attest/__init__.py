"""Attestations: in-toto Statements v1 in DSSE envelopes, stored in the ledger beside the notarization records.

An attestation says something about a subject's digests (how it was built, what it contains) in the in-toto
attestation format, exactly (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md):

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "registry.example/team/app", "digest": {"sha256": "<hex>"}}, ...],
     "predicateType": "https://slsa.dev/provenance/v1",
     "predicate": {...}}

wrapped in a DSSE envelope with payloadType `application/vnd.in-toto+json`, signed by the same signer
interface notarize uses (key files, PKCS#11 keys). Every in-toto or DSSE tool reads it. The ledger keys are per
subject digest, per signer and per predicate type (docs/records.md, "Attestations"), so nothing written by
another key can shadow a trusted signer's statement, and a verifier reads exactly the keys a policy requires.

Attestations never make a digest trusted: the gate and `verify` decide notarized / revoked first
(notary.verify), and a `require` in the policy can only refuse more.
"""

from notary.attest.envelopes import (
    Attestation,
    attestation_index_key,
    attestation_key,
    check_type,
    open_attestation,
    sign_statement,
    statement,
    statement_bytes,
    type_id,
)
from notary.attest.predicates import (
    BUILD_TYPE,
    CYCLONEDX,
    HEX64,
    MAX_ENVELOPE,
    MAX_IMMUDB_ENVELOPE,
    MAX_PREDICATE,
    MAX_PREDICATE_DEPTH,
    MAX_SBOM,
    MAX_SUBJECTS,
    MAX_WRITE,
    PAYLOAD_TYPE,
    SBOM_TYPES,
    SLSA_PROVENANCE,
    SPDX,
    STATEMENT_TYPE,
    TYPE_URI,
    PredicateError,
    PredicateTypeError,
    load_predicate,
    load_sbom,
    parse_predicate,
    provenance,
    sbom_type,
    source_uri,
)
from notary.attest.require import (
    Requirement,
    normalize_source,
    parse_requirements,
    unmet,
)
from notary.attest.store import (
    Attested,
    IndexedType,
    attest,
    attestation_history,
    attestation_writes,
    audit_entry,
    envelope_limit,
    index_public_key,
    indexed_types,
)

__all__ = [
    "Attestation",
    "Attested",
    "BUILD_TYPE",
    "CYCLONEDX",
    "HEX64",
    "IndexedType",
    "MAX_ENVELOPE",
    "MAX_IMMUDB_ENVELOPE",
    "MAX_PREDICATE",
    "MAX_PREDICATE_DEPTH",
    "MAX_SBOM",
    "MAX_SUBJECTS",
    "MAX_WRITE",
    "PAYLOAD_TYPE",
    "PredicateError",
    "PredicateTypeError",
    "Requirement",
    "SBOM_TYPES",
    "SLSA_PROVENANCE",
    "SPDX",
    "STATEMENT_TYPE",
    "TYPE_URI",
    "attest",
    "attestation_history",
    "attestation_index_key",
    "attestation_key",
    "attestation_writes",
    "audit_entry",
    "check_type",
    "envelope_limit",
    "index_public_key",
    "indexed_types",
    "load_predicate",
    "load_sbom",
    "normalize_source",
    "open_attestation",
    "parse_predicate",
    "parse_requirements",
    "provenance",
    "sbom_type",
    "sign_statement",
    "source_uri",
    "statement",
    "statement_bytes",
    "type_id",
    "unmet",
]
