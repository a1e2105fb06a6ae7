package msgauth_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/mailserver/msgauth"
)

// BenchmarkSign is the cost of signing a 4 KiB message at send time (RSA-2048 and Ed25519).
func BenchmarkSign(b *testing.B) {
	msg := "From: <app@a.test>\r\nTo: <bob@sink.test>\r\nSubject: bench\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 76)+"\r\n", 52)
	for _, kt := range []msgauth.KeyType{msgauth.RSA, msgauth.Ed25519} {
		b.Run(string(kt), func(b *testing.B) {
			s := &msgauth.Signer{Keys: msgauth.NewKeys(b.TempDir(), msgauth.KeysOptions{Type: kt}), Live: liveFor("a.test")}
			for b.Loop() {
				if sig, err := s.Sign(context.Background(), strings.NewReader(msg)); err != nil || sig == nil {
					b.Fatal(err)
				}
			}
		})
	}
}
