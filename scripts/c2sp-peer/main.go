// c2sp-peer: an independent reader of notary's C2SP checkpoints and cosignatures, for notary's tests.
//
// It uses golang.org/x/mod/sumdb/note (the Go checksum database's signed-note code) and filippo.io/torchwood
// (tlog-checkpoint, tlog-cosignature), never notary's own code:
//
//	c2sp-peer verify -log VKEY [-witness-name NAME -witness-seed HEX] < note
//
// prints one line per verified signature name, then "origin size root" from torchwood's checkpoint parser;
// exits 1 when note.Open refuses the note. The witness's cosignature verifier is torchwood's, made from the
// witness's key (the test owns it: torchwood v0.6.1 builds cosignature verifiers only from a signer).
package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "verify" {
		fmt.Fprintln(os.Stderr, "usage: c2sp-peer verify -log VKEY [-witness-name NAME -witness-seed HEX] < note")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	logKey := fs.String("log", "", "the log's verifier key")
	witnessName := fs.String("witness-name", "", "the witness's name")
	witnessSeed := fs.String("witness-seed", "", "the witness's Ed25519 seed, hex")
	_ = fs.Parse(os.Args[2:])

	msg, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	fail(err)
	logVerifier, err := note.NewVerifier(*logKey)
	fail(err)
	verifiers := []note.Verifier{logVerifier}
	if *witnessName != "" {
		seed, err := hex.DecodeString(*witnessSeed)
		fail(err)
		signer, err := torchwood.NewCosignatureSigner(*witnessName, ed25519.NewKeyFromSeed(seed))
		fail(err)
		verifiers = append(verifiers, signer.Verifier())
		fmt.Fprintln(os.Stderr, "witness vkey", signer.Verifier().String())
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "refused:", err)
		os.Exit(1)
	}
	for _, s := range n.Sigs {
		fmt.Println(s.Name)
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	fail(err)
	fmt.Println(c.Origin, c.N, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
}
