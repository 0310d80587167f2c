package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"regexp"
	"strings"

	hclog "github.com/hashicorp/go-hclog"
)

// hclogAdapter routes hashicorp/raft's hclog output into log/slog, so one
// process writes one log format whatever library speaks.
type hclogAdapter struct {
	logger *slog.Logger
	name   string
	args   []interface{}
}

func newHCLog(logger *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{logger: logger.With("component", name), name: name}
}

func toSlogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...interface{}) {
	for i, arg := range args {
		// hclog.Fmt values carry a format and its arguments.
		if format, ok := arg.(hclog.Format); ok && len(format) > 0 {
			if pattern, ok := format[0].(string); ok {
				args[i] = fmt.Sprintf(pattern, format[1:]...)
			}
		}
	}
	h.logger.Log(context.Background(), toSlogLevel(level), msg, args...)
}
func (h *hclogAdapter) Trace(msg string, args ...interface{}) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...interface{}) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...interface{})  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...interface{})  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...interface{}) { h.Log(hclog.Error, msg, args...) }
func (h *hclogAdapter) enabled(level hclog.Level) bool {
	return h.logger.Enabled(context.Background(), toSlogLevel(level))
}
func (h *hclogAdapter) IsTrace() bool                       { return false }
func (h *hclogAdapter) IsDebug() bool                       { return h.enabled(hclog.Debug) }
func (h *hclogAdapter) IsInfo() bool                        { return h.enabled(hclog.Info) }
func (h *hclogAdapter) IsWarn() bool                        { return h.enabled(hclog.Warn) }
func (h *hclogAdapter) IsError() bool                       { return h.enabled(hclog.Error) }
func (h *hclogAdapter) ImpliedArgs() []interface{}          { return h.args }
func (h *hclogAdapter) Name() string                        { return h.name }
func (h *hclogAdapter) SetLevel(hclog.Level)                {}
func (h *hclogAdapter) GetLevel() hclog.Level               { return hclog.Info }
func (h *hclogAdapter) ResetNamed(name string) hclog.Logger { return h.Named(name) }
func (h *hclogAdapter) With(args ...interface{}) hclog.Logger {
	return &hclogAdapter{logger: h.logger.With(args...), name: h.name, args: append(append([]interface{}{}, h.args...), args...)}
}
func (h *hclogAdapter) Named(name string) hclog.Logger {
	return &hclogAdapter{logger: h.logger.With("sub", name), name: h.name + "." + name, args: h.args}
}
func (h *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(nil), "", 0)
}
func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &levelPrefixWriter{logger: h.logger}
}

// stdLogTimestamp is the date and time the standard logger puts first;
// slog adds its own.
var stdLogTimestamp = regexp.MustCompile(`^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(\.\d+)? `)

// levelPrefixWriter takes lines in the "[LEVEL] text" form that memberlist
// and the standard logger write, and logs each at its level.
type levelPrefixWriter struct {
	logger *slog.Logger
}

func (w *levelPrefixWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		text := strings.TrimSpace(stdLogTimestamp.ReplaceAllString(string(line), ""))
		level := slog.LevelInfo
		for prefix, l := range map[string]slog.Level{
			"[DEBUG]": slog.LevelDebug, "[TRACE]": slog.LevelDebug, "[INFO]": slog.LevelInfo,
			"[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError,
		} {
			if strings.HasPrefix(text, prefix) {
				level, text = l, strings.TrimSpace(strings.TrimPrefix(text, prefix))
				break
			}
		}
		w.logger.Log(context.Background(), level, text)
	}
	return len(p), nil
}
