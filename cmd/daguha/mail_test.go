package main

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/dispatch/worker"
)

// settingsOf runs a command's flags over args (config file and
// environment included) and returns the worker's mail settings and what
// checkSettings says of them.
func settingsOf(t *testing.T, flags []cli.Flag, args ...string) (worker.MailSettings, error) {
	t.Helper()
	var settings worker.MailSettings
	var checked error
	probe := &cli.Command{Name: "probe", Flags: flags, Action: func(c *cli.Context) error {
		from, _, err := applyConfig(c)
		if err != nil {
			return err
		}
		settings = mailSettings(c)
		checked = checkSettings(c, from)
		return nil
	}}
	app := &cli.App{Name: "daguha", Commands: []*cli.Command{probe}, ExitErrHandler: func(*cli.Context, error) {}}
	app.Writer, app.ErrWriter = &strings.Builder{}, &strings.Builder{}
	if err := app.Run(append([]string{"daguha", "probe"}, args...)); err != nil {
		t.Fatal(err)
	}
	return settings, checked
}

// Dagu's config file keys and DAGU_ variables give a worker its mail
// settings, in the worker command and in a worker agent alike; the servers
// take none.
func TestWorkerMailSettingsFromDagusConfig(t *testing.T) {
	t.Setenv("DAGU_HOME", t.TempDir())
	file := writeConfig(t, `smtp:
  host: smtp.example.com
  port: "587"
  username: alerts@example.com
  password: ${SMTP_PASSWORD}
errorMail:
  from: dagu@example.com
  to: [oncall@example.com, lead@example.com]
  prefix: "[Dagu Alert]"
  attachLogs: true
infoMail:
  from: dagu@example.com
  to: team@example.com
`)
	t.Setenv("DAGU_INFO_MAIL_PREFIX", "[Info]")
	want := worker.MailSettings{
		SMTP:      worker.SMTPServer{Host: "smtp.example.com", Port: "587", Username: "alerts@example.com", Password: "${SMTP_PASSWORD}"},
		ErrorMail: worker.MailAddresses{From: "dagu@example.com", To: []string{"oncall@example.com", "lead@example.com"}, Prefix: "[Dagu Alert]", AttachLogs: true},
		InfoMail:  worker.MailAddresses{From: "dagu@example.com", To: []string{"team@example.com"}, Prefix: "[Info]"},
	}
	for name, flags := range map[string][]cli.Flag{"worker": workerCommand().Flags, "agent": agentFlags()} {
		got, err := settingsOf(t, flags, "--config="+file)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if got.SMTP != want.SMTP || got.InfoMail.Prefix != "[Info]" || strings.Join(got.ErrorMail.To, ",") != "oncall@example.com,lead@example.com" ||
			!got.ErrorMail.AttachLogs || got.ErrorMail.Prefix != want.ErrorMail.Prefix || strings.Join(got.InfoMail.To, ",") != "team@example.com" {
			t.Errorf("%s: mail settings\n got %+v\nwant %+v", name, got, want)
		}
	}
	for _, f := range seedServerCommand("start-all", "").Flags {
		if mailFlag(f.Names()[0]) {
			t.Errorf("start-all takes %s: servers send no mail", f.Names()[0])
		}
	}
	if !secretFlags["smtp.password"] {
		t.Error("config show would print smtp.password")
	}
}

func TestBadWorkerMailSettingsAreNamed(t *testing.T) {
	t.Setenv("DAGU_HOME", t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--smtp.host=mail", "--smtp.port=smtp"}, `smtp.port: "smtp" (from flag or environment) is not a port`},
		{[]string{"--smtp.host=mail example"}, "smtp.host:"},
		{[]string{"--error-mail.to=ok@example.com,nobody"}, `error-mail.to: "nobody" (from flag or environment) is not an e-mail address`},
		{[]string{"--info-mail.from=not an address"}, "info-mail.from:"},
	} {
		_, err := settingsOf(t, workerCommand().Flags, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
	// A variable is the worker's to expand when it sends.
	if _, err := settingsOf(t, workerCommand().Flags, "--smtp.port=${SMTP_PORT}", "--error-mail.to=$TEAM"); err != nil {
		t.Errorf("references refused: %v", err)
	}
}
