package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/ops/wire"
)

func operatorCommand() *cli.Command {
	return &cli.Command{
		Name:  "operator",
		Usage: "operator tools for the cluster",
		Subcommands: []*cli.Command{{
			Name:  "raft",
			Usage: "the Raft configuration",
			Subcommands: []*cli.Command{
				{
					Name:  "list-peers",
					Usage: "list the servers of the Raft configuration with their state and last index",
					Flags: clientFlags(),
					Action: func(c *cli.Context) error {
						apiClient, err := newAPIClient(c)
						if err != nil {
							return err
						}
						peers, err := apiClient.RaftPeers(c.Context)
						if err != nil {
							return err
						}
						return printPeers(c.App.Writer, peers)
					},
				},
				{
					Name:  "remove-peer",
					Usage: "remove a (dead) server from the Raft configuration; stop it first, or gossip adds it back",
					Flags: append(clientFlags(), &cli.StringFlag{Name: "id", Usage: "the server's node name"}),
					Action: func(c *cli.Context) error {
						if c.String("id") == "" {
							return errors.New("-id is required: the server to remove")
						}
						apiClient, err := newAPIClient(c)
						if err != nil {
							return err
						}
						if err := apiClient.RemovePeer(c.Context, c.String("id")); err != nil {
							return err
						}
						fmt.Printf("removed %s from the Raft configuration\n", c.String("id"))
						return nil
					},
				},
				{
					Name:  "transfer-leadership",
					Usage: "hand leadership to a server (-id), or to the most up-to-date follower",
					Flags: append(clientFlags(), &cli.StringFlag{Name: "id", Usage: "the server to lead (default: the leader's choice)"}),
					Action: func(c *cli.Context) error {
						apiClient, err := newAPIClient(c)
						if err != nil {
							return err
						}
						if err := apiClient.TransferLeadership(c.Context, c.String("id")); err != nil {
							return err
						}
						fmt.Println("leadership transferred")
						return nil
					},
				},
			},
		}},
	}
}

// printPeers writes the Raft configuration as a table, with the version,
// state schema and wire protocol each server runs as the answering
// server's gossip says, and a warning line when they differ.
func printPeers(out io.Writer, peers []wire.PeerState) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tADDRESS\tSTATE\tVOTER\tLAST INDEX\tVERSION\tSCHEMA\tPROTOCOL")
	versions := map[string]bool{}
	for _, p := range peers {
		version := p.Version
		if version == "" {
			version = "-" // a server older than versions in the API
		}
		versions[version] = true
		fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%d\t%s\t%d\t%d\n", p.ID, p.Address, p.State, p.Voter, p.LastIndex, version, p.StateSchema, p.WireProtocol)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(versions) > 1 {
		fmt.Fprintln(out, "The servers run different versions: an upgrade is under way (docs/upgrades.md).")
	}
	return nil
}
