package logticket

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
)

// A log ticket lets a server read the step logs of one attempt of a run
// from the worker that ran it. The leader grants it with the task; the
// worker keeps it beside the attempt's logs and serves them only to a
// request that carries it. Any server can compute it again, since every
// server holds the signing keys; a worker can compute none but its own,
// and a caller without a signing key none at all. It is a secret: never
// logged, never in a run record or an API answer.

// domain keeps a log ticket's MAC from ever being a lease token's (whose
// signed payload is JSON) or a key fingerprint's.
const domain = "daguha log ticket"

// MaxPerRequest bounds the tickets one step log request may carry (one
// per signing key of the calling server).
const MaxPerRequest = 16

// MaxBytes bounds one ticket in a request and in the file a worker
// keeps: a ticket is 43 bytes (base64url of 32).
const MaxBytes = 64

// payload is what a ticket's MAC covers: the domain, then each string
// with its length before it, so no two tuples share a payload.
func payload(runID string, attempt uint32, workerID string) []byte {
	payload := make([]byte, 0, len(domain)+len(runID)+len(workerID)+16)
	payload = append(payload, domain...)
	payload = binary.BigEndian.AppendUint32(payload, uint32(len(runID)))
	payload = append(payload, runID...)
	payload = binary.BigEndian.AppendUint32(payload, attempt)
	payload = binary.BigEndian.AppendUint32(payload, uint32(len(workerID)))
	payload = append(payload, workerID...)
	return payload
}

// Sign returns the ticket of one attempt of a run on one worker under
// one signing key: base64url(HMAC-SHA256), as lease tokens are signed.
func Sign(key []byte, runID string, attempt uint32, workerID string) string {
	h := hmac.New(sha256.New, key)
	h.Write(payload(runID, attempt, workerID))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}
