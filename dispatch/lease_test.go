package dispatch

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestLeaseTokens(t *testing.T) {
	signer, err := NewSigner([]byte("cluster-key"))
	if err != nil {
		t.Fatal(err)
	}
	claims := LeaseClaims{RunID: "run-1", Attempt: 2, WorkerID: "gpu-01", FencingToken: 42}
	token, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	got, err := signer.Verify(token)
	if err != nil || got != claims {
		t.Fatalf("verify own token: %+v, %v", got, err)
	}

	other, _ := NewSigner([]byte("another-key"))
	otherToken, _ := other.Sign(claims)
	payload, mac, _ := strings.Cut(token, ".")
	forgedClaims, _ := base64.RawURLEncoding.DecodeString(payload)
	forgedPayload := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(forgedClaims), `"f":42`, `"f":43`, 1)))
	flipped := []byte(mac)
	flipped[0] ^= 1

	for name, bad := range map[string]string{
		"signed with another key":          otherToken,
		"claims altered, signature kept":   forgedPayload + "." + mac,
		"signature altered":                payload + "." + string(flipped),
		"no signature":                     payload,
		"not base64":                       "!!!." + mac,
		"empty":                            "",
		"signature from another token":     payload + "." + strings.SplitN(otherToken, ".", 2)[1],
		"payload that is not JSON, signed": base64.RawURLEncoding.EncodeToString([]byte("x")) + "." + mac,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := signer.Verify(bad); !errors.Is(err, ErrBadToken) {
				t.Fatalf("Verify accepted a bad token: %v", err)
			}
		})
	}
}

func TestLeaseKeyRotation(t *testing.T) {
	old, _ := NewSigner([]byte("old"))
	rotated, _ := NewSigner([]byte("new"), []byte("old"))
	claims := LeaseClaims{RunID: "r", Attempt: 1, WorkerID: "w", FencingToken: 7}
	oldToken, _ := old.Sign(claims)
	if _, err := rotated.Verify(oldToken); err != nil {
		t.Fatalf("a token signed with the previous key is refused after rotation: %v", err)
	}
	newToken, _ := rotated.Sign(claims)
	if _, err := old.Verify(newToken); err == nil {
		t.Fatal("the new key signed a token the old key alone accepts: the first key is not the signing one")
	}
	if _, err := NewSigner(nil, []byte{}); err == nil {
		t.Fatal("a signer without a usable key was created")
	}
}
