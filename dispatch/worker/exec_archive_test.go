package worker

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's archive executor on real archives: made by the executor, by the
// test with archive/tar and archive/zip (the attacks), and by the
// system's tar and zip.

// testEntry is an entry of an archive a test makes.
type testEntry struct {
	name string
	// kind: 'f' a file (body), 'd' a directory, 'l' a symlink to link,
	// 'h' a hard link to the entry link (tar only).
	kind byte
	body string
	link string
}

func writeTestTar(t *testing.T, file string, gz bool, entries []testEntry) {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var z *gzip.Writer
	if gz {
		z = gzip.NewWriter(&buf)
		w = z
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Format: tar.FormatPAX}
		switch e.kind {
		case 'f':
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		case 'd':
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case 'l':
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case 'h':
			h.Typeflag, h.Linkname = tar.TypeLink, e.link
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if z != nil {
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeTestZip(t *testing.T, file string, entries []testEntry) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		body := e.body
		switch e.kind {
		case 'f':
			h.SetMode(0o644)
		case 'd':
			h.SetMode(fs.ModeDir | 0o755)
		case 'l':
			h.SetMode(fs.ModeSymlink | 0o777)
			body = e.link
		default:
			t.Fatalf("zip has no entry kind %c", e.kind)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readTree is what lies under dir: each file's content, each symlink as
// "-> target", each directory as "/".
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			tree[rel] = "-> " + target
			return err
		case d.IsDir():
			tree[rel] = "/"
		default:
			data, err := os.ReadFile(p)
			tree[rel] = string(data)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s is %q, want %q", what, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s is there, and should not be", what, k)
		}
	}
}

// makeSource writes the tree the round trips archive: files, a
// subdirectory and a symlink.
func makeSource(t *testing.T, dir string) map[string]string {
	t.Helper()
	for name, body := range map[string]string{"a.txt": "one\n", "sub/b.csv": "x,y\n1,2\n", "sub/deeper/c.json": `{"c": 3}`} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return readTree(t, dir)
}

func stepJSON(t *testing.T, host *fakeHost, step string) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal([]byte(host.last()[step].GetOutputTail()), &out); err != nil {
		t.Fatalf("%s printed %q: %v", step, host.last()[step].GetOutputTail(), err)
	}
	return out
}

// A directory goes into an archive in one syntax and comes back out in
// the other, for each format daguha writes; relative paths are the
// DAG's workingDir's.
func TestArchiveCreateExtractListInBothSyntaxes(t *testing.T) {
	old := func(op, settings string) string {
		return "    executor:\n      type: archive\n      config: " + settings + "\n    command: " + op + "\n"
	}
	current := func(op, settings string) string {
		return "    type: archive\n    with: " + settings + "\n    command: " + op + "\n"
	}
	for _, tc := range []struct {
		format            string
		create, unarchive func(op, settings string) string
	}{
		{"tar", old, current},
		{"tar.gz", current, old},
		{"zip", old, current},
	} {
		t.Run(tc.format, func(t *testing.T) {
			dir := t.TempDir()
			want := makeSource(t, filepath.Join(dir, "src"))
			file := "out/src." + tc.format
			r, host := runYAML(t, dir, "workingDir: $D\nsteps:\n  - name: pack\n"+
				tc.create("create", "{source: src, destination: "+file+"}")+
				"  - name: unpack\n"+tc.unarchive("extract", "{source: "+file+", destination: back}")+
				"  - name: list\n"+tc.unarchive("list", `{source: `+file+`, include: ["**/*.csv", "**/deeper"]}`))
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
			sameTree(t, "extracted", readTree(t, filepath.Join(dir, "back", "src")), want)
			packed := stepJSON(t, host, "pack")
			// src, a.txt, link, sub, sub/b.csv, sub/deeper, sub/deeper/c.json
			if packed["operation"] != "create" || packed["filesAdded"] != 7.0 || packed["bytesArchived"] != 20.0 || packed["destination"] != file {
				t.Errorf("create printed %v", packed)
			}
			unpacked := stepJSON(t, host, "unpack")
			if unpacked["filesExtracted"] != 4.0 || unpacked["bytesExtracted"] != 20.0 || unpacked["filesSkipped"] != 0.0 {
				t.Errorf("extract printed %v", unpacked)
			}
			listed := stepJSON(t, host, "list")
			files, _ := listed["files"].([]any)
			var paths []string
			for _, f := range files {
				paths = append(paths, f.(map[string]any)["path"].(string))
			}
			if strings.Join(paths, " ") != "src/sub/b.csv src/sub/deeper" || listed["totalFiles"] != 2.0 || listed["totalSize"] != 8.0 {
				t.Errorf("list printed %v", listed)
			}
		})
	}
}

// The system's tar and zip read what the executor writes, and the
// executor reads what they write (tar.bz2 too).
func TestArchiveExecutorAndSystemToolsReadEachOthersArchives(t *testing.T) {
	need := func(t *testing.T, tool, pkg string) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: install %s (as root: apt-get install %s, or make deps)", tool, pkg, pkg)
		}
	}
	run := func(t *testing.T, dir string, argv ...string) {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	for _, tc := range []struct {
		format, tool, pkg string
		pack, unpack      []string // the tool's, in the archive's directory
	}{
		{"tar", "tar", "tar", []string{"tar", "-cf", "src.tar", "src"}, []string{"tar", "-xf", "src.tar", "-C", "theirs"}},
		{"tar.gz", "tar", "tar", []string{"tar", "-czf", "src.tar.gz", "src"}, []string{"tar", "-xzf", "src.tar.gz", "-C", "theirs"}},
		{"tar.bz2", "bzip2", "bzip2", []string{"tar", "-cjf", "src.tar.bz2", "src"}, nil},
		{"zip", "zip", "zip unzip", []string{"zip", "-q", "-r", "-y", "src.zip", "src"}, []string{"unzip", "-q", "src.zip", "-d", "theirs"}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			need(t, tc.tool, tc.pkg)
			if tc.unpack != nil {
				need(t, tc.unpack[0], tc.pkg)
			}
			dir := t.TempDir()
			want := makeSource(t, filepath.Join(dir, "src"))
			run(t, dir, tc.pack...)
			// Theirs, extracted by the executor; the format told by its bytes.
			if err := os.Rename(filepath.Join(dir, "src."+tc.format), filepath.Join(dir, "theirs.bin")); err != nil {
				t.Fatal(err)
			}
			steps := "workingDir: $D\nsteps:\n  - name: unpack\n    type: archive\n    with: {source: theirs.bin, destination: ours}\n    command: extract\n"
			if tc.unpack != nil {
				steps += "  - name: pack\n    executor: {type: archive, config: {source: src, destination: mine." + tc.format + "}}\n    command: create\n"
			}
			r, host := runYAML(t, dir, steps)
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
			sameTree(t, "extracted by the executor", readTree(t, filepath.Join(dir, "ours", "src")), want)
			if tc.unpack == nil {
				return
			}
			// Ours, extracted by the tool.
			if err := os.Rename(filepath.Join(dir, "mine."+tc.format), filepath.Join(dir, "src."+tc.format)); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "theirs"), 0o755); err != nil {
				t.Fatal(err)
			}
			run(t, dir, tc.unpack...)
			sameTree(t, "extracted by "+tc.unpack[0], readTree(t, filepath.Join(dir, "theirs", "src")), want)
		})
	}
}

// naiveExtract writes the entries as an extractor without checks would:
// each name joined to dest (an absolute one taken as it is), parents
// made, symlinks and hard links made as they say, files written through
// whatever links lie on their way.
func naiveExtract(t *testing.T, file, format, dest string) {
	t.Helper()
	err := readArchive(context.Background(), file, file, format, 0, func(e *archiveEntry) error {
		target := e.name
		if !filepath.IsAbs(target) {
			target = filepath.Join(dest, e.name)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		switch {
		case e.mode.IsDir():
			return os.MkdirAll(target, 0o755)
		case e.mode&fs.ModeSymlink != 0:
			return os.Symlink(e.link, target)
		case e.hardLink:
			return os.Link(filepath.Join(dest, e.link), target)
		}
		data, err := io.ReadAll(e.body)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("the naive extract: %v", err)
	}
}

// The zip slip and its relatives: each archive writes (or links) a file
// outside its destination when extracted without checks, which the test
// shows first; the executor refuses the entry, and nothing outside the
// destination changes, with continueOnError too (the refusal is then
// listed and the good entries extracted).
func TestArchiveExtractRefusesEntriesThatLeaveTheDestination(t *testing.T) {
	for _, tc := range []struct {
		name string
		// entries' names may hold OUT: the directory beside dest.
		entries []testEntry
		// escaped is the path (under base) that the naive extract
		// writes or links, outside dest.
		escaped string
		zip     bool
		refusal string
	}{
		{"a .. path", []testEntry{{name: "../outside/evil", kind: 'f', body: "pwned"}}, "outside/evil", true, "a .. part"},
		{"an absolute path", []testEntry{{name: "OUT/evil", kind: 'f', body: "pwned"}}, "outside/evil", true, "absolute path"},
		{"a link out, then a file through it", []testEntry{{name: "link", kind: 'l', link: "../outside"}, {name: "link/evil", kind: 'f', body: "pwned"}},
			"outside/evil", true, `a link to "../outside", outside the destination`},
		{"an absolute link, then a file through it", []testEntry{{name: "link", kind: 'l', link: "OUT"}, {name: "link/evil", kind: 'f', body: "pwned"}},
			"outside/evil", true, "a link to the absolute path"},
		{"links that climb out together", []testEntry{
			{name: "a/b/up", kind: 'l', link: "../.."},
			{name: "x", kind: 'l', link: "a/b/up/.."},
			{name: "x/outside/evil", kind: 'f', body: "pwned"},
		}, "outside/evil", true, "goes up after going down"},
		{"a hard link to a file outside", []testEntry{{name: "hl", kind: 'h', link: "../outside/secret"}}, "dest/hl", false, "a .. part"},
	} {
		for _, format := range []string{"tar", "zip"} {
			if format == "zip" && !tc.zip {
				continue
			}
			t.Run(tc.name+" "+format, func(t *testing.T) {
				layout := func() (base, dest, file string) {
					base = t.TempDir()
					dest = filepath.Join(base, "dest")
					outside := filepath.Join(base, "outside")
					if err := os.MkdirAll(outside, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
						t.Fatal(err)
					}
					entries := make([]testEntry, len(tc.entries))
					for i, e := range tc.entries {
						e.name = strings.ReplaceAll(e.name, "OUT", outside)
						e.link = strings.ReplaceAll(e.link, "OUT", outside)
						entries[i] = e
					}
					// A good entry after the attack: continueOnError reaches it.
					entries = append(entries, testEntry{name: "good.txt", kind: 'f', body: "fine"})
					file = filepath.Join(base, "attack."+format)
					if format == "zip" {
						writeTestZip(t, file, entries)
					} else {
						writeTestTar(t, file, false, entries)
					}
					return base, dest, file
				}

				// Without the checks, the archive reaches outside.
				base, dest, file := layout()
				naiveExtract(t, file, format, dest)
				if _, err := os.Lstat(filepath.Join(base, tc.escaped)); err != nil {
					t.Fatalf("the attack did not work without the checks: %v", err)
				}

				for _, keepGoing := range []bool{false, true} {
					base, dest, file := layout()
					before := readTree(t, filepath.Join(base, "outside"))
					j := &archiveJob{op: "extract", source: file, sourcePath: file, destination: dest, destPath: dest, format: format,
						preserve: true, keepGoing: keepGoing, limits: archiveLimits{bytes: maxArchiveBytes, entries: maxArchiveEntries}}
					res, err := j.extract(context.Background())
					if !keepGoing {
						var ae *archiveError
						if !errors.As(err, &ae) || ae.code != archiveExitExtract || !strings.Contains(err.Error(), tc.refusal) {
							t.Fatalf("extract: %v, want refused with exit code %d: …%s…", err, archiveExitExtract, tc.refusal)
						}
					} else {
						if err != nil {
							t.Fatalf("extract with continueOnError: %v", err)
						}
						if len(res.Errors) == 0 || !strings.Contains(strings.Join(res.Errors, "\n"), tc.refusal) {
							t.Errorf("errors listed %q, want …%s…", res.Errors, tc.refusal)
						}
						if got := readFile(t, filepath.Join(dest, "good.txt")); got != "fine" {
							t.Errorf("good.txt %q", got)
						}
					}
					if tc.escaped != "dest/hl" {
						if _, err := os.Lstat(filepath.Join(base, tc.escaped)); !errors.Is(err, fs.ErrNotExist) {
							t.Errorf("%s was written: %v", tc.escaped, err)
						}
					} else if _, err := os.Lstat(filepath.Join(dest, "hl")); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("the hard link was made: %v", err)
					}
					sameTree(t, "outside", readTree(t, filepath.Join(base, "outside")), before)
					if _, err := os.Lstat(filepath.Join(base, "evil")); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("evil landed beside dest: %v", err)
					}
				}
			})
		}
	}
}

// The path checks on their own: what they refuse lands outside the
// destination when joined to it as it is.
func TestArchivePathChecks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		strip    int
		preserve bool
		want     string
		refused  bool
	}{
		{"a/b.txt", 0, true, "a/b.txt", false},
		{"./a/./b.txt", 0, true, "a/b.txt", false},
		{"top/a/b.txt", 1, true, "a/b.txt", false},
		{"top/a/b.txt", 3, true, "", false},
		{"top/a/b.txt", 0, false, "b.txt", false},
		{"top/", 1, true, "", false},
		{"../evil", 0, true, "", true},
		{"a/../../evil", 0, true, "", true},
		{"top/../../evil", 1, true, "", true},
		{"/etc/cron.d/evil", 0, true, "", true},
	} {
		got, err := archiveEntryPath(tc.name, tc.strip, tc.preserve)
		if got != tc.want || (err != nil) != tc.refused {
			t.Errorf("archiveEntryPath(%q, %d, %v) = %q, %v; want %q, refused %v", tc.name, tc.strip, tc.preserve, got, err, tc.want, tc.refused)
		}
		if tc.refused && tc.name[0] != '/' && filepath.IsLocal(tc.name) {
			t.Errorf("%q is refused but would stay inside", tc.name)
		}
	}
	for _, tc := range []struct {
		at, target string
		refused    bool
	}{
		{"link", "a.txt", false},
		{"d/link", "../a.txt", false},
		{"d/e/link", "../../a.txt", false},
		{"d/link", "./x/../", true},
		{"link", "../a.txt", true},
		{"d/link", "../../a.txt", true},
		{"link", "/etc/passwd", true},
		{"link", "", true},
		{"x", "a/b/up/..", true},
	} {
		err := archiveLinkTarget(tc.at, tc.target)
		if (err != nil) != tc.refused {
			t.Errorf("archiveLinkTarget(%q, %q) = %v, want refused %v", tc.at, tc.target, err, tc.refused)
		}
	}
}

// An archive bomb stops at the bounds: bytes (one big file, or many that
// add up) and entries; what was written of the file that passed the
// bound is removed; continueOnError does not go past a bound.
func TestArchiveExtractStopsAtItsBounds(t *testing.T) {
	const mib = 1 << 20
	zeros := strings.Repeat("\x00", 3*mib)
	many := make([]testEntry, 20)
	for i := range many {
		many[i] = testEntry{name: "f" + string(rune('a'+i)), kind: 'f'}
	}
	limits := archiveLimits{bytes: mib, entries: 10}
	for _, tc := range []struct {
		name, format string
		entries      []testEntry
		want         string
	}{
		{"one big file, tar.gz", "tar.gz", []testEntry{{name: "bomb", kind: 'f', body: zeros}}, "more than 1048576 bytes"},
		{"one big file, zip", "zip", []testEntry{{name: "bomb", kind: 'f', body: zeros}}, "more than 1048576 bytes"},
		{"files that add up", "tar.gz", []testEntry{
			{name: "a", kind: 'f', body: zeros[:mib/2]}, {name: "b", kind: 'f', body: zeros[:mib/2]}, {name: "bomb", kind: 'f', body: "x"},
		}, "more than 1048576 bytes"},
		{"many entries", "zip", many, "more than 10 entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "bomb."+tc.format)
			if tc.format == "zip" {
				writeTestZip(t, file, tc.entries)
			} else {
				writeTestTar(t, file, true, tc.entries)
			}
			if info, _ := os.Stat(file); info.Size() > 64<<10 {
				t.Fatalf("the bomb is %d bytes: not much of a bomb", info.Size())
			}
			for _, op := range []string{"extract", "list", "verify"} {
				dest := filepath.Join(dir, "out-"+op)
				j := &archiveJob{op: op, source: file, sourcePath: file, destination: dest, destPath: dest,
					preserve: true, keepGoing: true, limits: limits}
				var err error
				switch op {
				case "extract":
					_, err = j.extract(context.Background())
				case "list":
					if tc.name != "many entries" {
						continue // list reads no content
					}
					_, err = j.list(context.Background())
				case "verify":
					j.verify = true
					_, err = j.list(context.Background())
				}
				var ae *archiveError
				if !errors.As(err, &ae) || ae.code != archiveExitBounds || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: %v, want exit code %d: …%s…", op, err, archiveExitBounds, tc.want)
				}
				if op != "extract" {
					continue
				}
				var total int64
				var files int
				_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
					if err == nil && d.Type().IsRegular() {
						info, _ := d.Info()
						total += info.Size()
						files++
					}
					return nil
				})
				if total > limits.bytes || int64(files) > limits.entries {
					t.Errorf("%d bytes in %d files written, past the bounds", total, files)
				}
				if _, err := os.Stat(filepath.Join(dest, "bomb")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the file that passed the bound is still there: %v", err)
				}
			}
		})
	}
}

// The settings, through the engine: strip, patterns, preserve_paths,
// overwrite, dry_run, follow_symlinks, verify_integrity, and Dagu's exit
// codes for failures.
func TestArchiveExecutorSettings(t *testing.T) {
	t.Run("strip, include, exclude, flatten", func(t *testing.T) {
		dir := t.TempDir()
		writeTestTar(t, filepath.Join(dir, "a.tar"), false, []testEntry{
			{name: "top/", kind: 'd'}, {name: "top/keep/x.csv", kind: 'f', body: "x"}, {name: "top/keep/y.txt", kind: 'f', body: "y"},
			{name: "top/tmp/z.csv", kind: 'f', body: "z"}, {name: "top/w.csv", kind: 'f', body: "w"},
		})
		r, host := runYAML(t, dir, `workingDir: $D
steps:
  - name: strip
    type: archive
    with: {source: a.tar, destination: s, strip_components: 1, include: ["**/*.csv"], exclude: ["tmp/**"]}
    command: extract
  - name: flat
    executor: {type: archive, config: {source: a.tar, destination: f, preservePaths: false, exclude: "**/*.txt"}}
    command: EXTRACT
`)
		wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
		sameTree(t, "stripped", readTree(t, filepath.Join(dir, "s")), map[string]string{"keep": "/", "keep/x.csv": "x", "w.csv": "w"})
		sameTree(t, "flattened", readTree(t, filepath.Join(dir, "f")), map[string]string{"top": "/", "x.csv": "x", "z.csv": "z", "w.csv": "w"})
		if out := stepJSON(t, host, "strip"); out["filesExtracted"] != 2.0 || out["filesSkipped"] != 2.0 {
			t.Errorf("strip printed %v", out)
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		dir := t.TempDir()
		writeTestZip(t, filepath.Join(dir, "a.zip"), []testEntry{{name: "f.txt", kind: 'f', body: "new"}})
		outside := filepath.Join(dir, "outside.txt")
		for _, p := range []struct{ path, body string }{{"d/f.txt", "old"}, {"outside.txt", "keep"}} {
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p.path)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, p.path), []byte(p.body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(dir, "l"), 0o755); err != nil {
			t.Fatal(err)
		}
		// A link where the file goes: replaced, not written through.
		if err := os.Symlink(outside, filepath.Join(dir, "l", "f.txt")); err != nil {
			t.Fatal(err)
		}
		r, host := runYAML(t, dir, `workingDir: $D
type: graph
steps:
  - name: refused
    type: archive
    with: {source: a.zip, destination: d}
    command: extract
    continueOn: {failure: true}
  - name: replaced
    type: archive
    with: {source: a.zip, destination: d, overwrite: true}
    command: extract
    depends: refused
  - name: link replaced
    type: archive
    with: {source: a.zip, destination: l, overwrite: true}
    command: extract
`)
		wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
		if st := host.last()["refused"]; st.GetExitCode() != archiveExitDestination || !strings.Contains(st.GetError(), "f.txt exists (overwrite is off)") {
			t.Errorf("refused: exit %d %q", st.GetExitCode(), st.GetError())
		}
		if got := readFile(t, filepath.Join(dir, "d", "f.txt")); got != "new" {
			t.Errorf("d/f.txt %q, want new", got)
		}
		if got := readFile(t, filepath.Join(dir, "l", "f.txt")); got != "new" {
			t.Errorf("l/f.txt %q, want new", got)
		}
		if got := readFile(t, outside); got != "keep" {
			t.Errorf("the file the link named was written: %q", got)
		}
	})

	t.Run("dry run, follow links, verify", func(t *testing.T) {
		dir := t.TempDir()
		makeSource(t, filepath.Join(dir, "src"))
		r, host := runYAML(t, dir, `workingDir: $D
steps:
  - name: dry
    type: archive
    with: {source: src, dry_run: true}
    command: create
  - name: followed
    type: archive
    with: {source: src, destination: f.tgz, follow_symlinks: true, verify_integrity: true, compression_level: 9}
    command: create
  - name: dry extract
    type: archive
    with: {source: f.tgz, destination: never, dry_run: true}
    command: extract
  - name: unpack
    type: archive
    with: {source: f.tgz, destination: back, verify_integrity: true}
    command: extract
`)
		wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
		if out := stepJSON(t, host, "dry"); out["filesAdded"] != 7.0 || out["bytesArchived"] != 20.0 {
			t.Errorf("dry printed %v", out)
		}
		if out := stepJSON(t, host, "followed"); out["verifyPerformed"] != true || out["bytesArchived"] != 24.0 {
			t.Errorf("followed printed %v", out)
		}
		if out := stepJSON(t, host, "dry extract"); out["filesExtracted"] != 4.0 || out["bytesExtracted"] != 24.0 {
			t.Errorf("dry extract printed %v", out)
		}
		if _, err := os.Stat(filepath.Join(dir, "never")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a dry run made its destination: %v", err)
		}
		// The link came back as the file it named.
		if got := readTree(t, filepath.Join(dir, "back", "src"))["link"]; got != "one\n" {
			t.Errorf("link is %q, want the content of a.txt", got)
		}
	})

	t.Run("failures and their exit codes", func(t *testing.T) {
		dir := t.TempDir()
		writeTestTar(t, filepath.Join(dir, "good.tar.gz"), true, []testEntry{{name: "a", kind: 'f', body: strings.Repeat("data ", 1000)}})
		data, err := os.ReadFile(filepath.Join(dir, "good.tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		// The gzip trailer's checksum no longer matches.
		data[len(data)-6] ^= 0xff
		if err := os.WriteFile(filepath.Join(dir, "bad.tar.gz"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "plain.txt"), []byte("not an archive"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, step string
			code       int32
			msg        string
		}{
			{"no source", "with: {source: missing.tar}\n    command: extract", archiveExitSource, "source missing.tar: no such file"},
			{"not an archive", "with: {source: plain.txt}\n    command: list", archiveExitFormat, "not a tar, tar.gz, tar.bz2 or zip archive"},
			{"a bad checksum", "with: {source: bad.tar.gz, verify_integrity: true}\n    command: list", archiveExitCorrupted, "not a readable tar.gz archive"},
			{"an operation from a variable", "with: {source: good.tar.gz}\n    command: ${OP}", archiveExitConfig, `command "${OP}": want create, extract or list`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, host := runYAML(t, dir, "workingDir: $D\nenv:\n  - OP: unpack\nsteps:\n  - name: s\n    type: archive\n    "+tc.step+"\n")
				wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
				if st := host.last()["s"]; st.GetExitCode() != tc.code || !strings.Contains(st.GetError(), tc.msg) {
					t.Errorf("exit %d %q, want %d …%s…", st.GetExitCode(), st.GetError(), tc.code, tc.msg)
				}
			})
		}
	})
}

// Whatever name an archive holds, what archiveEntryPath lets through is
// a local path, and a link archiveLinkTarget lets through points inside
// the destination.
func FuzzArchivePaths(f *testing.F) {
	for _, seed := range [][2]string{{"a/b", "../c"}, {"../x", "y"}, {"a/b/c", "../../.."}, {"/abs", "/abs"}, {"./a//b/", "./../b"}, {"a\\b", "..\\.."}} {
		f.Add(seed[0], seed[1], 0)
	}
	f.Fuzz(func(t *testing.T, name, target string, strip int) {
		if strip < 0 || strip > 8 {
			return
		}
		rel, err := archiveEntryPath(name, strip, true)
		if err != nil || rel == "" {
			return
		}
		if !filepath.IsLocal(rel) {
			t.Fatalf("archiveEntryPath(%q) = %q, not local", name, rel)
		}
		if archiveLinkTarget(rel, target) != nil {
			return
		}
		if resolved := path.Join(path.Dir(rel), target); !filepath.IsLocal(resolved) {
			t.Fatalf("a link at %q to %q resolves to %q, outside", rel, target, resolved)
		}
	})
}
