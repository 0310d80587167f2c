package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/client"
)

// inspectArchiveFile checks the archive at path fully, reading it from
// disk as it goes, and returns what it holds and its size.
func inspectArchiveFile(path string) (fsm.ArchiveHeader, fsm.ArchiveCounts, int64, error) {
	file, err := os.Open(path)
	if err != nil {
		return fsm.ArchiveHeader{}, fsm.ArchiveCounts{}, 0, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return fsm.ArchiveHeader{}, fsm.ArchiveCounts{}, 0, err
	}
	header, counts, err := fsm.InspectArchive(file, info.Size())
	return header, counts, info.Size(), err
}

// progressWriter reports how much has been written, at most twice a second.
type progressWriter struct {
	w       io.Writer
	written int64
	last    time.Time
	label   string
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.written += int64(n)
	if time.Since(p.last) > 500*time.Millisecond {
		fmt.Fprintf(os.Stderr, "\r%s %d KiB", p.label, p.written>>10)
		p.last = time.Now()
	}
	return n, err
}

// snapshotError words an error answer to a snapshot save or restore as
// the command always has: the status and the server's body.
func snapshotError(action string, err error) error {
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		return fmt.Errorf("snapshot %s: HTTP %d: %s", action, apiErr.Status, strings.TrimSpace(string(apiErr.Body)))
	}
	return err
}

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "save, inspect and restore the cluster's state",
		Subcommands: []*cli.Command{
			{
				Name:      "save",
				Usage:     "write a consistent snapshot of the cluster's state to FILE (checksummed)",
				ArgsUsage: "FILE",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("snapshot save takes one file")
					}
					apiClient, err := newAPIClient(c)
					if err != nil {
						return err
					}
					archive, err := apiClient.SaveSnapshot(c.Context)
					if err != nil {
						return snapshotError("save", err)
					}
					defer archive.Close()
					tmp := c.Args().First() + ".part"
					f, err := os.Create(tmp)
					if err != nil {
						return err
					}
					progress := &progressWriter{w: f, label: "saving"}
					_, copyErr := io.Copy(progress, archive)
					closeErr := f.Close()
					fmt.Fprintf(os.Stderr, "\rsaved %d KiB\n", progress.written>>10)
					if copyErr != nil || closeErr != nil {
						os.Remove(tmp)
						return fmt.Errorf("snapshot save: %w", errors.Join(copyErr, closeErr))
					}
					header, counts, _, err := inspectArchiveFile(tmp)
					if err != nil {
						os.Remove(tmp)
						return fmt.Errorf("the snapshot received is damaged: %w", err)
					}
					if err := os.Rename(tmp, c.Args().First()); err != nil {
						return err
					}
					fmt.Printf("saved snapshot at index %d: %d runs, %d workers, %d DAGs\n", header.Index, counts.Runs, counts.Workers, counts.Dags)
					return nil
				},
			},
			{
				Name:      "inspect",
				Usage:     "check a snapshot file and show what it holds",
				ArgsUsage: "FILE",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("snapshot inspect takes one file")
					}
					header, counts, size, err := inspectArchiveFile(c.Args().First())
					if err != nil {
						return err
					}
					fmt.Printf("version   %d\nindex     %d\nterm      %d\nnode      %s\ncreated   %s\nruns      %d\nworkers   %d\ndags      %d\nschedules %d\nsize      %d bytes\n",
						header.Version, header.Index, header.Term, header.Node, header.CreatedAt, counts.Runs, counts.Workers, counts.Dags, counts.Schedules, size)
					return nil
				},
			},
			{
				Name:      "restore",
				Usage:     "replace the cluster's state with a snapshot file (for disaster recovery)",
				ArgsUsage: "FILE",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("snapshot restore takes one file")
					}
					_, _, size, err := inspectArchiveFile(c.Args().First())
					if err != nil {
						return err
					}
					if size > cluster.MaxArchiveBytes {
						return fmt.Errorf("%s: %w (it has %d bytes)", c.Args().First(), cluster.ErrArchiveTooLarge, size)
					}
					file, err := os.Open(c.Args().First())
					if err != nil {
						return err
					}
					defer file.Close()
					apiClient, err := newAPIClient(c)
					if err != nil {
						return err
					}
					ctx, cancel := context.WithTimeout(c.Context, 20*time.Minute)
					defer cancel()
					if _, err := apiClient.RestoreSnapshot(ctx, file); err != nil {
						return snapshotError("restore", err)
					}
					fmt.Println("restored")
					return nil
				},
			},
		},
	}
}
