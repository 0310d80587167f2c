package wire

// Error is the body of every error answer (status 400 and above).
type Error struct {
	Error string `json:"error"`
}
