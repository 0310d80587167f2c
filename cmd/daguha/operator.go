package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
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
						w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
						fmt.Fprintln(w, "ID\tADDRESS\tSTATE\tVOTER\tLAST INDEX")
						for _, p := range peers {
							fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%d\n", p.ID, p.Address, p.State, p.Voter, p.LastIndex)
						}
						return w.Flush()
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
