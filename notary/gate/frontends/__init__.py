"""The gate's resident front ends: the hook server, the Docker authorization plugin, the Kubernetes admission
webhook, and the unix-socket server under the first two. Each turns its caller's request into Gate.check
(notary.gate.decision) and the answer back into its caller's protocol."""
