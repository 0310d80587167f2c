package worker

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// kindArchive is Dagu's archive executor: the step creates, extracts or
// lists a tar, tar.gz or zip archive (and extracts or lists tar.bz2).
const kindArchive = "archive"

// What one archive step reads at most: an extract that would write more
// bytes (regular files' contents, all together) or read more entries
// fails at that point, so an archive bomb cannot fill the worker's disk
// or its inodes. list and verifyIntegrity stop at the same bounds. Dagu
// has no such settings.
const (
	maxArchiveBytes   = 10 << 30
	maxArchiveEntries = 100_000
)

// maxArchiveLinkTarget bounds a zip symlink's target, which is its body.
const maxArchiveLinkTarget = 4096

// archiveLimits are the bounds one job keeps (tests lower them).
type archiveLimits struct {
	bytes, entries int64
}

// The exit codes Dagu's archive executor gives a failure, by its cause.
const (
	archiveExitConfig      = 2
	archiveExitSource      = 3
	archiveExitDestination = 4
	archiveExitFormat      = 5
	archiveExitExtract     = 6
	archiveExitCreate      = 7
	archiveExitPermission  = 10
	archiveExitBounds      = 11
	archiveExitCorrupted   = 12
)

// archiveError is a failure with Dagu's exit code for its cause. A fatal
// one (a bound passed) stops an extract even with continueOnError.
type archiveError struct {
	code  int
	fatal bool
	msg   string
}

func (e *archiveError) Error() string { return e.msg }

func archiveFail(code int, format string, args ...any) error {
	return &archiveError{code: code, msg: fmt.Sprintf(format, args...)}
}

// archiveFileFail is archiveFail for an error of the file system: a
// permission refused gets Dagu's permission code.
func archiveFileFail(code int, err error, format string, args ...any) error {
	if errors.Is(err, fs.ErrPermission) {
		code = archiveExitPermission
	}
	return &archiveError{code: code, msg: fmt.Sprintf(format, args...) + ": " + err.Error()}
}

// archiveSettings are the archive executor's settings
// (dagfile/archive.go); the pointers are nil when not given.
type archiveSettings struct {
	Source           string   `json:"source"`
	Destination      string   `json:"destination"`
	Format           string   `json:"format"`
	CompressionLevel *int     `json:"compressionLevel"`
	Overwrite        bool     `json:"overwrite"`
	PreservePaths    *bool    `json:"preservePaths"`
	StripComponents  int      `json:"stripComponents"`
	Include          []string `json:"include"`
	Exclude          []string `json:"exclude"`
	DryRun           bool     `json:"dryRun"`
	Verbose          bool     `json:"verbose"`
	FollowSymlinks   bool     `json:"followSymlinks"`
	VerifyIntegrity  bool     `json:"verifyIntegrity"`
	ContinueOnError  bool     `json:"continueOnError"`
}

// archiveExecutor runs the step's command (create, extract or list) on
// its settings, as Dagu's archive executor does, with Go's archive/tar,
// archive/zip, compress/gzip and compress/bzip2. source and destination
// (variables expanded) are taken from the step's directory (stepDir) when
// relative. What it prints is a JSON object of what it did, Dagu's
// fields; a failure's exit code is Dagu's for its cause. Extraction
// writes nothing outside its destination (see archiveEntryPath and
// archiveLinkTarget; every write goes through an os.Root of the
// destination too) and keeps to archiveLimits.
type archiveExecutor struct{}

func init() { registerExecutor(kindArchive, archiveExecutor{}) }

func (archiveExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	job, err := newArchiveJob(t)
	if err != nil {
		return archiveFailed(t, err)
	}
	var result any
	switch job.op {
	case "create":
		result, err = job.create(ctx)
	case "extract":
		result, err = job.extract(ctx)
	default:
		result, err = job.list(ctx)
	}
	if ctx.Err() != nil {
		return stoppedState(ctx)
	}
	if err != nil {
		return archiveFailed(t, err)
	}
	out, err := json.MarshalIndent(result, "", "  ")
	if err != nil {
		return archiveFailed(t, err)
	}
	return executorResult(t, append(out, '\n'), "")
}

func archiveFailed(t *stepTry, err error) *daguhav1.StepState {
	st := executorResult(t, nil, "archive: "+err.Error())
	var ae *archiveError
	if errors.As(err, &ae) {
		st.ExitCode = int32(ae.code)
	}
	return st
}

// archiveJob is one archive step, its values expanded and checked.
type archiveJob struct {
	op string
	// source and destination as written (variables expanded), for the
	// output; sourcePath and destPath resolved for the file system.
	source, destination  string
	sourcePath, destPath string
	// format is the canonical one given, "" to tell it from the file.
	format           string
	level            int
	overwrite        bool
	preserve         bool
	strip            int
	include, exclude []string
	dryRun           bool
	follow           bool
	verify           bool
	keepGoing        bool
	limits           archiveLimits
}

func newArchiveJob(t *stepTry) (*archiveJob, error) {
	spec := t.spec()
	var s archiveSettings
	if cfg := spec.GetExecutorConfigJson(); cfg != "" {
		if err := json.Unmarshal([]byte(cfg), &s); err != nil {
			return nil, archiveFail(archiveExitConfig, "settings: %v", err)
		}
	}
	r := t.scope()
	j := &archiveJob{
		op:          strings.ToLower(strings.TrimSpace(expandVars(spec.GetCommand(), r))),
		source:      expandVars(s.Source, r),
		destination: expandVars(s.Destination, r),
		level:       gzip.DefaultCompression,
		overwrite:   s.Overwrite,
		preserve:    true,
		strip:       s.StripComponents,
		dryRun:      s.DryRun,
		follow:      s.FollowSymlinks,
		verify:      s.VerifyIntegrity,
		keepGoing:   s.ContinueOnError,
		limits:      archiveLimits{bytes: maxArchiveBytes, entries: maxArchiveEntries},
	}
	if !slices.Contains(dagfile.ArchiveOperations, j.op) {
		return nil, archiveFail(archiveExitConfig, "command %q: want create, extract or list", spec.GetCommand())
	}
	if s.PreservePaths != nil {
		j.preserve = *s.PreservePaths
	}
	if s.CompressionLevel != nil {
		j.level = *s.CompressionLevel
	}
	if strings.TrimSpace(j.source) == "" {
		return nil, archiveFail(archiveExitConfig, "%s needs source (%q expanded to nothing)", j.op, s.Source)
	}
	if j.op == "create" && j.destination == "" && !j.dryRun {
		return nil, archiveFail(archiveExitConfig, "create needs destination (%q expanded to nothing)", s.Destination)
	}
	if f := expandVars(s.Format, r); f != "" {
		format, err := dagfile.ArchiveFormat(f)
		if err != nil {
			return nil, archiveFail(archiveExitFormat, "%v", err)
		}
		j.format = format
	}
	for _, list := range []struct {
		in  []string
		out *[]string
	}{{s.Include, &j.include}, {s.Exclude, &j.exclude}} {
		for _, p := range list.in {
			p = strings.TrimSpace(expandVars(p, r))
			if p == "" {
				continue
			}
			if err := dagfile.CheckGlob(p); err != nil {
				return nil, archiveFail(archiveExitConfig, "%v", err)
			}
			*list.out = append(*list.out, p)
		}
	}
	dir, err := t.x.stepDir(spec, r)
	if err != nil {
		return nil, err
	}
	j.sourcePath = resolvePath(j.source, dir)
	switch {
	case j.destination != "":
		j.destPath = resolvePath(j.destination, dir)
	case j.op != "extract":
	case dir != "":
		// Dagu extracts into the working directory by default.
		j.destPath = dir
	default:
		j.destPath = "."
	}
	return j, nil
}

// kept says whether an entry's path passes the include and exclude
// patterns, as Dagu filters: any include (when there are some), no
// exclude.
func (j *archiveJob) kept(name string) bool {
	if len(j.include) > 0 && !slices.ContainsFunc(j.include, func(p string) bool { return dagfile.MatchGlob(p, name) }) {
		return false
	}
	return !slices.ContainsFunc(j.exclude, func(p string) bool { return dagfile.MatchGlob(p, name) })
}

// The outputs: Dagu's fields and names.
type (
	archiveExtracted struct {
		Operation       string   `json:"operation"`
		Source          string   `json:"source"`
		Destination     string   `json:"destination"`
		FilesExtracted  int64    `json:"filesExtracted"`
		BytesExtracted  int64    `json:"bytesExtracted"`
		FilesSkipped    int64    `json:"filesSkipped"`
		Duration        string   `json:"duration"`
		Errors          []string `json:"errors,omitempty"`
		VerifyPerformed bool     `json:"verifyPerformed"`
	}
	archiveCreated struct {
		Operation       string   `json:"operation"`
		Source          string   `json:"source"`
		Destination     string   `json:"destination"`
		FilesAdded      int64    `json:"filesAdded"`
		BytesArchived   int64    `json:"bytesArchived"`
		Duration        string   `json:"duration"`
		Errors          []string `json:"errors,omitempty"`
		VerifyPerformed bool     `json:"verifyPerformed"`
	}
	archiveListed struct {
		Operation  string             `json:"operation"`
		Source     string             `json:"source"`
		TotalFiles int                `json:"totalFiles"`
		TotalSize  int64              `json:"totalSize"`
		Files      []archiveListEntry `json:"files"`
		Verified   bool               `json:"verified"`
		Duration   string             `json:"duration"`
	}
	archiveListEntry struct {
		Path    string    `json:"path"`
		Size    int64     `json:"size"`
		Mode    string    `json:"mode"`
		ModTime time.Time `json:"modTime"`
		IsDir   bool      `json:"isDir"`
	}
)

// archiveEntry is one entry of an archive as read.
type archiveEntry struct {
	name    string
	mode    fs.FileMode
	size    int64
	modTime time.Time
	// link is a symlink's target, or the entry a hard link names.
	link     string
	hardLink bool
	// body is a regular file's content, to read before the next entry.
	body io.Reader
}

// openArchive checks the source of an extract or a list and tells its
// format: the one given, else what its first bytes say, else its name.
func (j *archiveJob) openArchive() (string, error) {
	info, err := os.Stat(j.sourcePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", archiveFail(archiveExitSource, "source %s: no such file", j.source)
	case err != nil:
		return "", archiveFileFail(archiveExitSource, err, "source %s", j.source)
	case info.IsDir():
		return "", archiveFail(archiveExitConfig, "source %s is a directory: %s takes an archive file", j.source, j.op)
	}
	if j.format != "" {
		return j.format, nil
	}
	return sniffArchiveFormat(j.sourcePath, j.source)
}

// sniffArchiveFormat tells an archive's format by its magic bytes: zip's
// PK, gzip's and bzip2's headers over a tar, or tar's ustar; a file that
// shows none is taken by its extension.
func sniffArchiveFormat(file, shown string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", archiveFileFail(archiveExitSource, err, "source %s", shown)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	isTar := func(b []byte) bool { return len(b) >= 262 && string(b[257:262]) == "ustar" }
	inner := func(r io.Reader) []byte {
		b := make([]byte, 512)
		n, _ := io.ReadFull(r, b)
		return b[:n]
	}
	found := ""
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		found = "zip"
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		if _, err := f.Seek(0, io.SeekStart); err == nil {
			if gz, err := gzip.NewReader(f); err == nil && isTar(inner(gz)) {
				found = "tar.gz"
			}
		}
	case bytes.HasPrefix(head, []byte("BZh")):
		if _, err := f.Seek(0, io.SeekStart); err == nil && isTar(inner(bzip2.NewReader(f))) {
			found = "tar.bz2"
		}
	case isTar(head):
		found = "tar"
	}
	if found != "" {
		return found, nil
	}
	if byName := dagfile.ArchiveFormatOfName(file); byName != "" {
		format, err := dagfile.ArchiveFormat(byName)
		if err != nil {
			return "", archiveFail(archiveExitFormat, "source %s: %v", shown, err)
		}
		return format, nil
	}
	return "", archiveFail(archiveExitFormat, "source %s: not a tar, tar.gz, tar.bz2 or zip archive daguha can tell: give format", shown)
}

// readArchive calls visit with each entry of the archive file, in the
// archive's order, until visit returns an error, which it returns. An
// archive that cannot be read is an error naming shown. With drain, the
// compressed stream is read to its end after the last entry, so that its
// checksum is checked (at most limit bytes).
func readArchive(ctx context.Context, file, shown, format string, drain int64, visit func(*archiveEntry) error) error {
	corrupt := func(err error) error {
		return archiveFail(archiveExitCorrupted, "source %s: not a readable %s archive: %v", shown, format, err)
	}
	if format == "zip" {
		zr, err := zip.OpenReader(file)
		if err != nil {
			return corrupt(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			if err := ctx.Err(); err != nil {
				return err
			}
			e := &archiveEntry{
				// Zip names use '/'; some Windows tools wrote '\'.
				name: strings.ReplaceAll(f.Name, `\`, "/"), mode: f.Mode(), size: int64(f.UncompressedSize64), modTime: f.Modified,
			}
			var body io.ReadCloser
			if e.mode&fs.ModeSymlink != 0 || e.mode.IsRegular() {
				if body, err = f.Open(); err != nil {
					return corrupt(fmt.Errorf("entry %q: %w", f.Name, err))
				}
			}
			if e.mode&fs.ModeSymlink != 0 {
				target, err := io.ReadAll(io.LimitReader(body, maxArchiveLinkTarget+1))
				body.Close()
				if err != nil {
					return corrupt(fmt.Errorf("entry %q: %w", f.Name, err))
				}
				if len(target) > maxArchiveLinkTarget {
					return corrupt(fmt.Errorf("entry %q: a link target longer than %d bytes", f.Name, maxArchiveLinkTarget))
				}
				e.link, body = string(target), nil
			}
			if body != nil {
				e.body = &readErrors{r: body, wrap: corrupt}
			}
			err = visit(e)
			if body != nil {
				body.Close()
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return archiveFileFail(archiveExitSource, err, "source %s", shown)
	}
	defer f.Close()
	var stream io.Reader = bufio.NewReader(f)
	switch format {
	case "tar.gz":
		gz, err := gzip.NewReader(stream)
		if err != nil {
			return corrupt(err)
		}
		stream = gz
	case "tar.bz2":
		stream = bzip2.NewReader(stream)
	}
	tr := tar.NewReader(stream)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return corrupt(err)
		}
		info := h.FileInfo()
		e := &archiveEntry{name: h.Name, mode: info.Mode(), size: h.Size, modTime: h.ModTime}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont, tar.TypeDir, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		case tar.TypeSymlink:
			e.link = h.Linkname
		case tar.TypeLink:
			e.link, e.hardLink, e.size = h.Linkname, true, 0
		case tar.TypeXGlobalHeader:
			continue // settings for the entries after it (git archive writes one)
		default:
			// Volume labels, GNU dump directories and other kinds: not a
			// file to write.
			e.mode = fs.ModeIrregular | info.Mode().Perm()
		}
		if e.mode.IsRegular() && !e.hardLink {
			e.body = &readErrors{r: tr, wrap: corrupt}
		}
		if err := visit(e); err != nil {
			return err
		}
	}
	if drain > 0 && format != "tar" {
		if _, err := io.Copy(io.Discard, io.LimitReader(ctxReader{ctx, stream}, drain)); err != nil {
			return corrupt(err)
		}
	}
	return nil
}

// readErrors marks what a reader of an archive's body fails with as the
// archive's fault (a bad checksum, a cut stream), not the destination's.
type readErrors struct {
	r    io.Reader
	wrap func(error) error
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = r.wrap(err)
	}
	return n, err
}

// ctxReader stops reading once ctx is done, so that a long copy ends
// with its step.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// verifyArchive reads every entry of the archive to its end, which checks
// zip's and gzip's checksums and that nothing is cut, within the bounds.
func (j *archiveJob) verifyArchive(ctx context.Context, format string) error {
	var entries, total int64
	return readArchive(ctx, j.sourcePath, j.source, format, j.limits.bytes, func(e *archiveEntry) error {
		if entries++; entries > j.limits.entries {
			return tooManyEntries(j.limits)
		}
		if e.body == nil {
			return nil
		}
		n, err := io.Copy(io.Discard, io.LimitReader(ctxReader{ctx, e.body}, j.limits.bytes-total+1))
		if total += n; total > j.limits.bytes {
			return tooManyBytes(j.limits)
		}
		return err
	})
}

func tooManyEntries(l archiveLimits) error {
	return &archiveError{code: archiveExitBounds, fatal: true,
		msg: fmt.Sprintf("the archive holds more than %d entries, the most daguha reads from one", l.entries)}
}

func tooManyBytes(l archiveLimits) error {
	return &archiveError{code: archiveExitBounds, fatal: true,
		msg: fmt.Sprintf("the archive holds more than %d bytes, the most daguha extracts from one", l.bytes)}
}

// archiveEntryPath is where an entry named name is written: a path
// relative to the destination with '/' between its parts, "" for none
// (the entry is the top itself, or stripComponents took all its parts).
// A name that is absolute, or holds a ".." part anywhere, is refused:
// it could leave the destination (the "zip slip"). "." and empty parts
// are dropped before strip parts are; without preserve only the last
// part is kept.
func archiveEntryPath(name string, strip int, preserve bool) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errors.New("an absolute path, which would be written outside the destination")
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", errors.New("a path with a .. part, which could be written outside the destination")
		}
		parts = append(parts, p)
	}
	if strip >= len(parts) {
		return "", nil
	}
	parts = parts[strip:]
	if !preserve {
		parts = parts[len(parts)-1:]
	}
	return strings.Join(parts, "/"), nil
}

// archiveLinkTarget checks the target of a symlink to be written at rel
// (a path archiveEntryPath made): relative, and staying under the
// destination when taken from the link's directory, with its ".." parts
// only at its start. A ".." after a name could climb out of a directory
// that an earlier link made elsewhere (a/b/link -> ../.., then x ->
// a/b/link/.. is the destination's parent), so it is refused even when
// the text of the path stays inside.
func archiveLinkTarget(rel, target string) error {
	if target == "" {
		return errors.New("a link with no target")
	}
	if strings.HasPrefix(target, "/") {
		return fmt.Errorf("a link to the absolute path %q, outside the destination", target)
	}
	depth := strings.Count(rel, "/") // the directories above the link
	up, named := 0, false
	for _, p := range strings.Split(target, "/") {
		switch p {
		case "", ".":
		case "..":
			if named {
				return fmt.Errorf("a link to %q, which goes up after going down: it could leave the destination through another link", target)
			}
			up++
		default:
			named = true
		}
	}
	if up > depth {
		return fmt.Errorf("a link to %q, outside the destination", target)
	}
	return nil
}

// noLinkOnPath refuses to write under dir (a path in root) when a part
// of it is a symlink: an entry is never written through a link, so links
// the archive made (or the destination held) cannot send it elsewhere.
// Parts not there yet are fine: they are made as directories.
func noLinkOnPath(root *os.Root, dir string) error {
	if dir == "" || dir == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		info, err := root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case info.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink: daguha writes no entry through one", p)
		case !info.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}

// extract writes the archive's entries under the destination, as Dagu's
// extract does: directories (made 0755), regular files (their mode's
// permission bits, 0644 when none; never setuid, setgid or sticky),
// symlinks and hard links within it; other entries (devices, fifos) are
// skipped. An existing file is an error unless overwrite; with
// continueOnError an entry's error is listed in the output and the rest
// go on (not a bound passed).
func (j *archiveJob) extract(ctx context.Context) (*archiveExtracted, error) {
	start := time.Now()
	format, err := j.openArchive()
	if err != nil {
		return nil, err
	}
	res := &archiveExtracted{Operation: "extract", Source: j.source, Destination: j.destination}
	if j.verify {
		if err := j.verifyArchive(ctx, format); err != nil {
			return nil, err
		}
		res.VerifyPerformed = true
	}
	var root *os.Root
	if !j.dryRun {
		if err := os.MkdirAll(j.destPath, 0o755); err != nil {
			return nil, archiveFileFail(archiveExitDestination, err, "destination %s", j.destination)
		}
		if root, err = os.OpenRoot(j.destPath); err != nil {
			return nil, archiveFileFail(archiveExitDestination, err, "destination %s", j.destination)
		}
		defer root.Close()
	}
	var entries, written int64
	err = readArchive(ctx, j.sourcePath, j.source, format, 0, func(e *archiveEntry) error {
		if entries++; entries > j.limits.entries {
			return tooManyEntries(j.limits)
		}
		err := j.extractEntry(ctx, root, e, &written, res)
		var ae *archiveError
		if err == nil || !j.keepGoing || ctx.Err() != nil || (errors.As(err, &ae) && ae.fatal) {
			return err
		}
		res.Errors = append(res.Errors, err.Error())
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Duration = time.Since(start).String()
	return res, nil
}

func (j *archiveJob) extractEntry(ctx context.Context, root *os.Root, e *archiveEntry, written *int64, res *archiveExtracted) error {
	rel, err := archiveEntryPath(e.name, j.strip, j.preserve)
	if err != nil {
		return archiveFail(archiveExitExtract, "entry %q: %v", e.name, err)
	}
	isDir := e.mode.IsDir()
	symlink := e.mode&fs.ModeSymlink != 0
	if rel == "" || !j.kept(rel) || (!isDir && !symlink && !e.mode.IsRegular()) {
		if !isDir {
			res.FilesSkipped++
		}
		return nil
	}
	fail := func(code int, err error) error {
		return archiveFileFail(code, err, "entry %q", e.name)
	}
	if symlink {
		if err := archiveLinkTarget(rel, e.link); err != nil {
			return archiveFail(archiveExitExtract, "entry %q: %v", e.name, err)
		}
	}
	var linkTo string
	if e.hardLink {
		if linkTo, err = archiveEntryPath(e.link, j.strip, j.preserve); err == nil && linkTo == "" {
			err = errors.New("names no file")
		}
		if err != nil {
			return archiveFail(archiveExitExtract, "entry %q: a hard link to %q: %v", e.name, e.link, err)
		}
	}
	if j.dryRun {
		if !isDir {
			res.FilesExtracted++
			res.BytesExtracted += e.size
		}
		return nil
	}
	if isDir {
		if err := noLinkOnPath(root, rel); err != nil {
			return fail(archiveExitDestination, err)
		}
		if err := root.MkdirAll(rel, 0o755); err != nil {
			return fail(archiveExitDestination, err)
		}
		return nil
	}
	if parent := path.Dir(rel); parent != "." {
		if err := noLinkOnPath(root, parent); err != nil {
			return fail(archiveExitDestination, err)
		}
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return fail(archiveExitDestination, err)
		}
	}
	if info, err := root.Lstat(rel); err == nil {
		switch {
		case !j.overwrite:
			return archiveFail(archiveExitDestination, "entry %q: %s exists (overwrite is off)", e.name, rel)
		case info.IsDir():
			return archiveFail(archiveExitDestination, "entry %q: %s is a directory", e.name, rel)
		}
		// Removed, not written into: it may be a link to elsewhere.
		if err := root.Remove(rel); err != nil {
			return fail(archiveExitDestination, err)
		}
	}
	switch {
	case symlink:
		if err := root.Symlink(e.link, rel); err != nil {
			return fail(archiveExitDestination, err)
		}
	case e.hardLink:
		if err := noLinkOnPath(root, linkTo); err != nil {
			return fail(archiveExitExtract, err)
		}
		if err := root.Link(linkTo, rel); err != nil {
			return fail(archiveExitExtract, err)
		}
	default:
		perm := e.mode.Perm()
		if perm == 0 {
			perm = 0o644
		}
		f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return fail(archiveExitDestination, err)
		}
		left := j.limits.bytes - *written
		n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, e.body}, left+1))
		*written += n
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if n > left {
			// What was written of it goes: the bound is about the disk.
			_ = root.Remove(rel)
			return tooManyBytes(j.limits)
		}
		if err != nil {
			var ae *archiveError
			if errors.As(err, &ae) || ctx.Err() != nil {
				return err
			}
			return fail(archiveExitExtract, err)
		}
		res.BytesExtracted += n
	}
	res.FilesExtracted++
	return nil
}

// list lists the archive's entries as stored ("./" and a directory's
// trailing "/" dropped), those the patterns keep.
func (j *archiveJob) list(ctx context.Context) (*archiveListed, error) {
	start := time.Now()
	format, err := j.openArchive()
	if err != nil {
		return nil, err
	}
	res := &archiveListed{Operation: "list", Source: j.source, Files: []archiveListEntry{}}
	if j.verify {
		if err := j.verifyArchive(ctx, format); err != nil {
			return nil, err
		}
		res.Verified = true
	}
	var entries int64
	err = readArchive(ctx, j.sourcePath, j.source, format, 0, func(e *archiveEntry) error {
		if entries++; entries > j.limits.entries {
			return tooManyEntries(j.limits)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(e.name, "./"), "/")
		if name == "" || name == "." || !j.kept(name) {
			return nil
		}
		res.Files = append(res.Files, archiveListEntry{Path: name, Size: e.size, Mode: e.mode.String(), ModTime: e.modTime, IsDir: e.mode.IsDir()})
		if !e.mode.IsDir() {
			res.TotalSize += e.size
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.TotalFiles = len(res.Files)
	res.Duration = time.Since(start).String()
	return res, nil
}

// archiveSource is one file, directory or link that create puts in.
type archiveSource struct {
	path, name string
	info       fs.FileInfo
	link       string
}

// create writes the source into the destination archive, as Dagu's
// create does: a file under its base name; a directory under its base
// name with everything in it (symlinks as links, or with followSymlinks
// what they point to: a file's content, a directory as an empty one);
// the entries the patterns keep, matched on their path in the archive.
// The format is the one given, else the destination's extension's. The
// archive is written beside the destination and renamed over it at the
// end, so a failed create leaves no half an archive.
func (j *archiveJob) create(ctx context.Context) (*archiveCreated, error) {
	start := time.Now()
	info, err := os.Stat(j.sourcePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, archiveFail(archiveExitSource, "source %s: no such file or directory", j.source)
	case err != nil:
		return nil, archiveFileFail(archiveExitSource, err, "source %s", j.source)
	}
	format := j.format
	// A dry run writes nothing: without a destination it needs no format.
	if format == "" && !(j.dryRun && j.destination == "") {
		byName := dagfile.ArchiveFormatOfName(j.destination)
		if byName == "" {
			return nil, archiveFail(archiveExitFormat, "cannot tell the format from destination %q: give format", j.destination)
		}
		if format, err = dagfile.ArchiveFormat(byName); err != nil {
			return nil, archiveFail(archiveExitFormat, "destination %s: %v", j.destination, err)
		}
	}
	if format == "tar.bz2" {
		return nil, archiveFail(archiveExitFormat, "daguha does not write tar.bz2 (Go's library only reads bzip2): create tar, tar.gz or zip")
	}
	sources, err := j.sources(ctx, info)
	if err != nil {
		return nil, err
	}
	res := &archiveCreated{Operation: "create", Source: j.source, Destination: j.destination, FilesAdded: int64(len(sources))}
	for _, s := range sources {
		if s.info.Mode().IsRegular() {
			res.BytesArchived += s.info.Size()
		}
	}
	if j.dryRun {
		res.Duration = time.Since(start).String()
		return res, nil
	}
	dir := filepath.Dir(j.destPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, archiveFileFail(archiveExitDestination, err, "destination %s", j.destination)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(j.destPath)+".*.part")
	if err != nil {
		return nil, archiveFileFail(archiveExitDestination, err, "destination %s", j.destination)
	}
	defer os.Remove(tmp.Name()) // gone once renamed; else the half archive
	if format == "zip" {
		err = j.writeZip(ctx, tmp, sources)
	} else {
		err = j.writeTar(ctx, tmp, format, sources)
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = archiveFileFail(archiveExitCreate, cerr, "destination %s", j.destination)
	}
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, archiveFileFail(archiveExitDestination, err, "destination %s", j.destination)
	}
	if err := os.Rename(tmp.Name(), j.destPath); err != nil {
		return nil, archiveFileFail(archiveExitDestination, err, "destination %s", j.destination)
	}
	if j.verify {
		check := *j
		check.sourcePath, check.source = j.destPath, j.destination
		if err := check.verifyArchive(ctx, format); err != nil {
			return nil, err
		}
		res.VerifyPerformed = true
	}
	res.Duration = time.Since(start).String()
	return res, nil
}

// sources lists what create puts in, in the order of a walk (lexical in
// each directory), the destination itself left out.
func (j *archiveJob) sources(ctx context.Context, info fs.FileInfo) ([]archiveSource, error) {
	var destInfo fs.FileInfo
	if fi, err := os.Stat(j.destPath); j.destPath != "" && err == nil && fi.Mode().IsRegular() {
		destInfo = fi
	}
	var out []archiveSource
	add := func(p, name string, d fs.DirEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return archiveFileFail(archiveExitSource, err, "source %s", p)
		}
		s := archiveSource{path: p, name: name, info: fi}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if j.follow {
				if s.info, err = os.Stat(p); err != nil {
					return archiveFileFail(archiveExitSource, err, "source %s: following the link", p)
				}
			} else if s.link, err = os.Readlink(p); err != nil {
				return archiveFileFail(archiveExitSource, err, "source %s", p)
			}
		}
		m := s.info.Mode()
		if !m.IsDir() && !m.IsRegular() && m&fs.ModeSymlink == 0 {
			return nil // sockets, devices and fifos are not archived
		}
		if destInfo != nil && os.SameFile(destInfo, s.info) {
			return nil
		}
		if j.kept(name) {
			out = append(out, s)
		}
		return nil
	}
	if !info.IsDir() {
		return out, add(j.sourcePath, filepath.Base(j.sourcePath), fs.FileInfoToDirEntry(info))
	}
	abs, err := filepath.Abs(j.sourcePath)
	if err != nil {
		return nil, archiveFileFail(archiveExitSource, err, "source %s", j.source)
	}
	top := filepath.Base(abs)
	// The trailing separator walks the directory a link names, too.
	walkRoot := strings.TrimSuffix(abs, string(filepath.Separator)) + string(filepath.Separator)
	err = filepath.WalkDir(walkRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return archiveFileFail(archiveExitSource, err, "source %s", p)
		}
		rel, err := filepath.Rel(walkRoot, p)
		if err != nil {
			return archiveFileFail(archiveExitSource, err, "source %s", p)
		}
		name := path.Join(top, filepath.ToSlash(rel))
		if top == "/" {
			// The whole file system: its paths, without the leading '/'.
			if name = filepath.ToSlash(rel); rel == "." {
				return nil
			}
		}
		return add(p, name, d)
	})
	var ae *archiveError
	if err != nil && !errors.As(err, &ae) && ctx.Err() == nil {
		err = archiveFileFail(archiveExitSource, err, "source %s", j.source)
	}
	return out, err
}

// copySource copies a regular source file's size bytes into w.
func copySource(ctx context.Context, w io.Writer, s archiveSource) error {
	f, err := os.Open(s.path)
	if err != nil {
		return archiveFileFail(archiveExitCreate, err, "source %s", s.path)
	}
	defer f.Close()
	if _, err := io.CopyN(w, ctxReader{ctx, f}, s.info.Size()); err != nil {
		return archiveFileFail(archiveExitCreate, err, "source %s (did it change while it was archived?)", s.path)
	}
	return nil
}

func (j *archiveJob) writeTar(ctx context.Context, out io.Writer, format string, sources []archiveSource) error {
	createFail := func(err error) error {
		var ae *archiveError
		if err == nil || errors.As(err, &ae) || ctx.Err() != nil {
			return err
		}
		return archiveFail(archiveExitCreate, "writing %s: %v", j.destination, err)
	}
	w := out
	var gz *gzip.Writer
	if format == "tar.gz" {
		var err error
		if gz, err = gzip.NewWriterLevel(out, j.level); err != nil {
			return archiveFail(archiveExitConfig, "compressionLevel %d: %v", j.level, err)
		}
		w = gz
	}
	tw := tar.NewWriter(w)
	for _, s := range sources {
		h, err := tar.FileInfoHeader(s.info, s.link)
		if err != nil {
			return createFail(err)
		}
		h.Name = s.name
		if s.info.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return createFail(err)
		}
		if s.info.Mode().IsRegular() {
			if err := copySource(ctx, tw, s); err != nil {
				return createFail(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return createFail(err)
	}
	if gz != nil {
		return createFail(gz.Close())
	}
	return nil
}

func (j *archiveJob) writeZip(ctx context.Context, out io.Writer, sources []archiveSource) error {
	createFail := func(err error) error {
		var ae *archiveError
		if err == nil || errors.As(err, &ae) || ctx.Err() != nil {
			return err
		}
		return archiveFail(archiveExitCreate, "writing %s: %v", j.destination, err)
	}
	zw := zip.NewWriter(out)
	// Dagu's compression_level is gzip's; daguha gives zip's deflate the
	// same level.
	level := j.level
	if _, err := flate.NewWriter(io.Discard, level); err != nil {
		return archiveFail(archiveExitConfig, "compressionLevel %d: %v", level, err)
	}
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, level) })
	for _, s := range sources {
		h, err := zip.FileInfoHeader(s.info)
		if err != nil {
			return createFail(err)
		}
		h.Name = s.name
		switch {
		case s.info.IsDir():
			h.Name += "/"
			h.Method = zip.Store
		case s.link != "":
			h.Method = zip.Store
		default:
			h.Method = zip.Deflate
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			return createFail(err)
		}
		switch {
		case s.link != "":
			_, err = io.WriteString(w, s.link)
		case s.info.Mode().IsRegular():
			err = copySource(ctx, w, s)
		}
		if err != nil {
			return createFail(err)
		}
	}
	return createFail(zw.Close())
}
