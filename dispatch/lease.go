package dispatch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// LeaseClaims is what a lease token binds: one attempt of one run, held by
// one worker, under one fencing token.
type LeaseClaims struct {
	RunID        string `json:"r"`
	Attempt      uint32 `json:"a"`
	WorkerID     string `json:"w"`
	FencingToken uint64 `json:"f"`
}

// ErrBadToken is returned for a token that is malformed, forged, altered
// or signed with a key this cluster does not have.
var ErrBadToken = errors.New("lease token is forged, altered or signed with another key")

// Signer signs lease tokens with the first key and accepts any of the
// keys, so a key can be rotated without refusing tokens already out.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a signer; it needs at least one non-empty key.
func NewSigner(keys ...[]byte) (*Signer, error) {
	var usable [][]byte
	for _, k := range keys {
		if len(k) > 0 {
			usable = append(usable, k)
		}
	}
	if len(usable) == 0 {
		return nil, errors.New("no signing key")
	}
	return &Signer{keys: usable}, nil
}

func mac(key, payload []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(payload)
	return h.Sum(nil)
}

// Sign returns the token for claims: base64url(JSON) "." base64url(HMAC-SHA256).
func (s *Signer) Sign(claims LeaseClaims) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode lease claims: %w", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(mac(s.keys[0], payload)), nil
}

// Verify checks a token's signature and returns its claims.
func (s *Signer) Verify(token string) (LeaseClaims, error) {
	enc := base64.RawURLEncoding
	encodedPayload, encodedMAC, ok := strings.Cut(token, ".")
	if !ok {
		return LeaseClaims{}, ErrBadToken
	}
	payload, err := enc.DecodeString(encodedPayload)
	if err != nil {
		return LeaseClaims{}, ErrBadToken
	}
	sum, err := enc.DecodeString(encodedMAC)
	if err != nil {
		return LeaseClaims{}, ErrBadToken
	}
	for _, key := range s.keys {
		if hmac.Equal(sum, mac(key, payload)) {
			var claims LeaseClaims
			if err := json.Unmarshal(payload, &claims); err != nil {
				return LeaseClaims{}, ErrBadToken
			}
			return claims, nil
		}
	}
	return LeaseClaims{}, ErrBadToken
}

// KeyID is a short fingerprint of a signing key, safe to show and to
// gossip: servers compare fingerprints, never keys.
func KeyID(key []byte) string {
	return fmt.Sprintf("%x", mac(key, []byte("daguha signing key id"))[:8])
}
