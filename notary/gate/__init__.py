"""The pre-run verification gate: policy, one decision path, and the runtime/admission front ends.

Kept import-free so `python -m notary.gate.oci_hook` pays only for what the hook uses.
"""
