package dagfile

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Dagu's archive executor (added after Dagu 1.17): command is the
// operation (create, extract or list) and the settings say on what.
// Dagu 1.x spells the settings in camelCase (preservePaths), current
// Dagu in snake_case (preserve_paths); both are read.
var archiveKeys = newKeyTable("source", "destination", "format", "compressionLevel", "password", "overwrite",
	"preservePaths", "stripComponents", "include", "exclude", "dryRun", "verbose", "followSymlinks",
	"verifyIntegrity", "continueOnError")

// ArchiveOperations are the archive executor's commands.
var ArchiveOperations = []string{"create", "extract", "list"}

// maxStripComponents bounds stripComponents: no archive path is deeper.
const maxStripComponents = 255

// ArchiveFormat is the format a format setting names, in its canonical
// spelling (tar, tar.gz, tar.bz2, zip; letter case and tgz, tbz2, tbz
// accepted), or an error saying what daguha reads and writes. The other
// formats Dagu names (tar.xz, tar.zst, 7z, rar, ...) need libraries
// daguha does not carry.
func ArchiveFormat(name string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "zip":
		return "zip", nil
	case "tar":
		return "tar", nil
	case "tar.gz", "tgz":
		return "tar.gz", nil
	case "tar.bz2", "tbz2", "tbz":
		return "tar.bz2", nil
	case "tar.xz", "txz", "tar.zst", "tar.zstd", "gz", "bz2", "xz", "zst", "zstd", "lz4", "7z", "rar":
		return "", fmt.Errorf("format %s is Dagu's but not daguha's: daguha writes tar, tar.gz and zip, and also reads tar.bz2", name)
	}
	return "", fmt.Errorf("unknown archive format %q: want tar, tar.gz (tgz), zip, or tar.bz2 (tbz2) to extract or list", name)
}

// CheckGlob says whether pattern is one MatchGlob can use: path.Match's
// syntax in each segment, ** a segment of its own, {a,b} alternatives.
func CheckGlob(pattern string) error {
	alternatives, err := expandBraces(pattern)
	if err != nil {
		return fmt.Errorf("pattern %q: %w", pattern, err)
	}
	for _, p := range alternatives {
		for _, segment := range strings.Split(p, "/") {
			if _, err := path.Match(segment, ""); err != nil {
				return fmt.Errorf("pattern %q: %w", pattern, err)
			}
		}
	}
	return nil
}

// MatchGlob says whether name (a path with '/' between its parts)
// matches pattern as Dagu's include and exclude patterns match
// (doublestar's rules): *, ? and [...] match within one part, a part
// ** matches any number of parts (none too), {a,b} is either. A pattern
// CheckGlob refuses matches nothing.
func MatchGlob(pattern, name string) bool {
	pattern = strings.TrimSpace(pattern)
	if pattern == "" {
		return false
	}
	alternatives, err := expandBraces(pattern)
	if err != nil {
		return false
	}
	parts := strings.Split(name, "/")
	for _, p := range alternatives {
		if matchParts(strings.Split(p, "/"), parts) {
			return true
		}
	}
	return false
}

func matchParts(pattern, name []string) bool {
	for len(pattern) > 0 {
		if pattern[0] == "**" {
			// The rest may start at any part from here on.
			for skip := 0; skip <= len(name); skip++ {
				if matchParts(pattern[1:], name[skip:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pattern[0], name[0]); err != nil || !ok {
			return false
		}
		pattern, name = pattern[1:], name[1:]
	}
	return len(name) == 0
}

// maxGlobAlternatives bounds what {a,b}{c,d}... may expand to.
const maxGlobAlternatives = 256

// expandBraces writes out a pattern's {a,b} alternatives, nested ones too.
func expandBraces(pattern string) ([]string, error) {
	open := -1
	depth := 0
	var commas []int
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			i++
		case '{':
			if depth == 0 {
				open = i
				commas = commas[:0]
			}
			depth++
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		case '}':
			if depth == 0 {
				return nil, errors.New("a } without its {")
			}
			depth--
			if depth > 0 {
				continue
			}
			head, tail := pattern[:open], pattern[i+1:]
			var out []string
			start := open + 1
			for _, end := range append(commas, i) {
				more, err := expandBraces(head + pattern[start:end] + tail)
				if err != nil {
					return nil, err
				}
				out = append(out, more...)
				if len(out) > maxGlobAlternatives {
					return nil, fmt.Errorf("more than %d alternatives", maxGlobAlternatives)
				}
				start = end + 1
			}
			return out, nil
		}
	}
	if depth > 0 {
		return nil, errors.New("a { without its }")
	}
	return []string{pattern}, nil
}

func init() {
	settingReaders["archive"] = (*collector).archiveSetting
	executorChecks["archive"] = func(c *collector, s executorStep) {
		at, atKey := s.at, s.typKey
		if s.config != nil {
			at, atKey = s.config, s.configKey
		}
		c.archiveStep(s.fields, s.settings, s.path, at, atKey)
	}
}

// archiveSetting reads one of the archive executor's settings.
func (c *collector) archiveSetting(name string, n *yaml.Node, key string) (any, bool) {
	switch name {
	case "overwrite", "preservePaths", "dryRun", "verbose", "followSymlinks", "verifyIntegrity", "continueOnError":
		return c.boolean(n, key)
	case "stripComponents":
		return c.integer(n, key, maxStripComponents)
	case "compressionLevel":
		// -1 is gzip's default; 0 stores, 1 to 9 trade speed for size.
		if r := resolve(n); r.Kind == yaml.ScalarNode && strings.TrimSpace(r.Value) == "-1" {
			return -1, true
		}
		return c.integer(n, key, 9)
	case "password":
		// Dagu uses it for 7z and rar only, which daguha does not read;
		// the value stays out of the message.
		c.add(n, key, "password is for 7z and rar archives, which daguha does not read: leave it out")
		return nil, false
	case "include", "exclude":
		patterns, at := c.texts(n, key)
		for i, p := range patterns {
			if strings.Contains(p, "$") {
				continue // checked by the worker once expanded
			}
			if err := CheckGlob(strings.TrimSpace(p)); err != nil {
				c.add(at[i], key, "%v", err)
				return nil, false
			}
		}
		if patterns == nil {
			patterns = []string{}
		}
		return patterns, true
	case "format":
		v, ok := c.text(n, key)
		if ok && v != "" && !strings.Contains(v, "$") {
			if _, err := ArchiveFormat(v); err != nil {
				c.add(n, key, "%v", err)
				return nil, false
			}
		}
		return v, ok
	}
	return c.text(n, key)
}

// archiveStep checks what an archive step needs beyond its settings: an
// operation for its command, a source, and for create a destination (a
// dry run needs none) in a format daguha writes. Values holding a
// reference are the worker's to check once expanded.
func (c *collector) archiveStep(fields map[string]entry, settings map[string]any, path string, at *yaml.Node, atKey string) {
	if e, ok := fields["script"]; ok && !isNull(resolve(e.value)) {
		c.add(e.keyAt, join(path, e.key), "an archive step takes no script: its command is create, extract or list")
	}
	op := ""
	e, given := fields["command"]
	switch {
	case !given || isNull(resolve(e.value)):
		c.add(at, atKey, "an archive step needs a command: create, extract or list")
		return
	case resolve(e.value).Kind != yaml.ScalarNode:
		c.add(e.value, join(path, e.key), "want create, extract or list, got %s", describe(e.value))
		return
	default:
		v := strings.TrimSpace(resolve(e.value).Value)
		if strings.Contains(v, "$") {
			break
		}
		op = strings.ToLower(v)
		known := false
		for _, o := range ArchiveOperations {
			known = known || o == op
		}
		if !known {
			c.add(e.value, join(path, e.key), "want create, extract or list, got %s", strconv.Quote(v))
			return
		}
	}
	if s, _ := settings["source"].(string); s == "" {
		c.add(at, atKey, "an archive step needs source: the archive to extract or list, or what to put in one")
	}
	if op != "create" {
		return
	}
	dest, _ := settings["destination"].(string)
	if dry, _ := settings["dryRun"].(bool); dest == "" && !dry {
		c.add(at, atKey, "archive create needs destination: the archive file to write")
	}
	format, _ := settings["format"].(string)
	if format == "" {
		if dest == "" || strings.Contains(dest, "$") {
			return
		}
		if format = ArchiveFormatOfName(dest); format == "" {
			c.add(at, atKey, "archive create cannot tell the format from destination %q: name it .tar, .tar.gz, .tgz or .zip, or give format", dest)
			return
		}
		if _, err := ArchiveFormat(format); err != nil {
			c.add(at, atKey, "destination %q: %v", dest, err)
			return
		}
	}
	if f, err := ArchiveFormat(format); err == nil && f == "tar.bz2" {
		c.add(at, atKey, "daguha does not write tar.bz2 (Go's library only reads bzip2): create tar, tar.gz or zip")
	}
}

// ArchiveFormatOfName is the format a file name's extension says, as
// Dagu infers it for create (ArchiveFormat tells whether daguha has it):
// "" when the extension names none.
func ArchiveFormatOfName(name string) string {
	lower := strings.ToLower(name)
	for _, s := range []struct{ suffix, format string }{
		{".tar.gz", "tar.gz"}, {".tgz", "tar.gz"}, {".tar.bz2", "tar.bz2"}, {".tbz2", "tar.bz2"}, {".tbz", "tar.bz2"},
		{".tar.xz", "tar.xz"}, {".txz", "tar.xz"}, {".tar.zst", "tar.zst"}, {".tar.zstd", "tar.zst"},
		{".tar", "tar"}, {".zip", "zip"}, {".gz", "gz"}, {".bz2", "bz2"}, {".xz", "xz"}, {".zst", "zst"},
		{".zstd", "zst"}, {".lz4", "lz4"}, {".7z", "7z"}, {".rar", "rar"},
	} {
		if strings.HasSuffix(lower, s.suffix) {
			return s.format
		}
	}
	return ""
}
