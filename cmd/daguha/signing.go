package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/daguha/daguha/cluster/identity"
)

// minSigningKeyBytes is the shortest lease signing key a server takes.
// The key is an HMAC key and every worker holds tokens signed with it: a
// short one can be found offline from a single token by trying keys.
const minSigningKeyBytes = 16

// signingKeys reads -coordinator.signing-key: each key is used as given
// (its bytes, not decoded), as before, so existing configurations keep
// working when their keys are long enough. An error names the setting and
// the key's position and length, never the key.
func signingKeys(values []string) ([][]byte, error) {
	given := splitList(values)
	keys := make([][]byte, 0, len(given))
	for i, key := range given {
		if len(key) < minSigningKeyBytes && identity.Enforced {
			return nil, fmt.Errorf("-coordinator.signing-key (env DAGU_COORDINATOR_SIGNING_KEY, config coordinator.signingKey): key %d of %d is %d bytes; want at least %d (make one with daguha keygen -signing)",
				i+1, len(given), len(key), minSigningKeyBytes)
		}
		keys = append(keys, []byte(key))
	}
	return keys, nil
}

// clusterTokens reads -cluster-token. A server's RaftState answer carries
// an HMAC with the token over the asker's challenge (the proof a server
// gives, cluster.AnswerRaftState), so anyone can collect one and try
// tokens offline: a token must be as long as a signing key. An error
// names the setting and the token's position and length, never the token.
func clusterTokens(values []string) ([]string, error) {
	given := splitList(values)
	for i, token := range given {
		if len(token) < minSigningKeyBytes && identity.Enforced {
			return nil, fmt.Errorf("-cluster-token (env DAGUHA_CLUSTER_TOKEN, config cluster.tokens): token %d of %d is %d bytes; want at least %d (make one with daguha keygen -signing)",
				i+1, len(given), len(token), minSigningKeyBytes)
		}
	}
	return given, nil
}

// newSigningKey returns a new lease signing key: 32 random bytes in
// URL-safe base64 without padding (43 characters that need no quoting in
// a shell, an env file or YAML, and hold no comma, the list separator).
func newSigningKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(key), nil
}
