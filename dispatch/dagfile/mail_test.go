package dagfile

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's mail keys, as its docs write them in 1.x and now, read into the
// DAG's settings and the step's mailOnError.
func TestMailSettingsRead(t *testing.T) {
	const text = `name: nightly
smtp:
  host: smtp.example.com
  port: "587"
  username: alerts@example.com
  password: ${SMTP_PASS}
mailOn:
  success: true
  failure: true
errorMail:
  from: dagu@example.com
  to:
    - oncall@example.com
    - Manager <manager@example.com>
  prefix: "[CRITICAL]"
  attachLogs: true
info_mail:
  from: dagu@example.com
  to: team@example.com
  prefix: "[Info] "
  attach_logs: false
steps:
  - name: load
    command: ./load.sh
    mailOnError: true
  - name: report
    command: ./report.sh
`
	dag := mustParse(t, "nightly.yaml", text).Dags[0]
	want := &daguhav1.DagSpec{
		Smtp:      &daguhav1.SmtpSettings{Host: "smtp.example.com", Port: "587", Username: "alerts@example.com", Password: "${SMTP_PASS}"},
		MailOn:    &daguhav1.MailOn{Success: true, Failure: true},
		ErrorMail: &daguhav1.MailSettings{From: "dagu@example.com", To: []string{"oncall@example.com", "Manager <manager@example.com>"}, Prefix: "[CRITICAL]", AttachLogs: true},
		InfoMail:  &daguhav1.MailSettings{From: "dagu@example.com", To: []string{"team@example.com"}, Prefix: "[Info]"},
	}
	got := &daguhav1.DagSpec{Smtp: dag.GetSmtp(), MailOn: dag.GetMailOn(), ErrorMail: dag.GetErrorMail(), InfoMail: dag.GetInfoMail()}
	if !proto.Equal(got, want) {
		t.Errorf("mail settings:\n got: %s\nwant: %s", prototext.Format(got), prototext.Format(want))
	}
	if steps := dag.GetSteps(); !steps[0].GetMailOnError() || steps[1].GetMailOnError() {
		t.Errorf("mailOnError = %v, %v; want true, false", steps[0].GetMailOnError(), steps[1].GetMailOnError())
	}
}

func TestMailSettingsForms(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string // top-level keys
		want *daguhav1.DagSpec
	}{
		{"a port written as a number", "smtp: {host: mail, port: 25}",
			&daguhav1.DagSpec{Smtp: &daguhav1.SmtpSettings{Host: "mail", Port: "25"}}},
		{"a port from a variable", "smtp: {host: mail, port: $SMTP_PORT}",
			&daguhav1.DagSpec{Smtp: &daguhav1.SmtpSettings{Host: "mail", Port: "$SMTP_PORT"}}},
		{"an empty smtp map is none (the worker's applies)", "smtp: {}", &daguhav1.DagSpec{}},
		{"null settings are none", "smtp:\nerrorMail:\nmailOn:", &daguhav1.DagSpec{}},
		{"a literal password is kept for the worker", "smtp: {host: mail, port: 465, username: u, password: s3cret}",
			&daguhav1.DagSpec{Smtp: &daguhav1.SmtpSettings{Host: "mail", Port: "465", Username: "u", Password: "s3cret"}}},
		{"to as one address", "errorMail: {from: a@example.com, to: b@example.com}",
			&daguhav1.DagSpec{ErrorMail: &daguhav1.MailSettings{From: "a@example.com", To: []string{"b@example.com"}}}},
		{"empty addresses in to are dropped", "errorMail: {to: [b@example.com, '', ' ']}",
			&daguhav1.DagSpec{ErrorMail: &daguhav1.MailSettings{To: []string{"b@example.com"}}}},
		{"addresses from variables are the worker's", "infoMail: {from: $FROM, to: '${TEAM}'}",
			&daguhav1.DagSpec{InfoMail: &daguhav1.MailSettings{From: "$FROM", To: []string{"${TEAM}"}}}},
		{"mailOn with only failure", "mailOn: {failure: true}",
			&daguhav1.DagSpec{MailOn: &daguhav1.MailOn{Failure: true}}},
		{"mailOn saying no", "mailOn: {failure: false, success: false}",
			&daguhav1.DagSpec{MailOn: &daguhav1.MailOn{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dag := mustParse(t, "m.yaml", tc.yaml+"\nsteps:\n  - name: a\n    command: \"true\"\n").Dags[0]
			got := &daguhav1.DagSpec{Smtp: dag.GetSmtp(), MailOn: dag.GetMailOn(), ErrorMail: dag.GetErrorMail(), InfoMail: dag.GetInfoMail()}
			if !proto.Equal(got, tc.want) {
				t.Errorf("got: %s\nwant: %s", prototext.Format(got), prototext.Format(tc.want))
			}
		})
	}
}

// Each bad mail setting is reported at its line and key, and no message
// holds the password written.
func TestBadMailSettings(t *testing.T) {
	const steps = "steps:\n  - name: a\n    command: \"true\"\n"
	for _, tc := range []struct {
		name, text, key, message string
		line                     int
	}{
		{"smtp is a string", "smtp: mail.example.com\n", "smtp", "want a map such as {host:", 1},
		{"port is no number", "smtp:\n  host: mail\n  port: smtp\n", "smtp.port", `want a port number from 1 to 65535`, 3},
		{"port out of range", "smtp:\n  host: mail\n  port: 70000\n", "smtp.port", `got "70000"`, 3},
		{"host with a space", "smtp:\n  host: mail example\n", "smtp.host", "want a host name", 2},
		{"misspelt password key", "smtp:\n  host: mail\n  pasword: hunter2-secret\n", "smtp.pasword", `did you mean "password"?`, 3},
		{"password is a list", "smtp:\n  password: [hunter2-secret]\n", "smtp.password", "want a string, got a list", 2},
		{"mailOn is a list", "mailOn: [failure]\n", "mailOn", "want a map", 1},
		{"mailOn value not a bool", "mailOn:\n  failure: often\n", "mailOn.failure", "want true or false", 2},
		{"current Dagu's wait mail", "mailOn:\n  wait: true\n", "mailOn.wait", "not supported", 2},
		{"unknown errorMail key", "errorMail:\n  cc: x@example.com\n", "errorMail.cc", `unknown key "cc"`, 2},
		{"bad from address", "errorMail:\n  from: not an address\n", "errorMail.from", "want an e-mail address", 2},
		{"bad address in a list", "infoMail:\n  to:\n    - ok@example.com\n    - nobody\n", "infoMail.to[1]", `got "nobody"`, 4},
		{"to is a map", "infoMail:\n  to: {a: b}\n", "infoMail.to", "want a string, got a map", 2},
		{"prefix over lines", "errorMail:\n  prefix: \"a\\nb\"\n", "errorMail.prefix", "one line", 2},
		{"attachLogs not a bool", "errorMail:\n  attachLogs: yes please\n", "errorMail.attachLogs", "want true or false", 2},
		{"mailOnError not a bool", "steps:\n  - name: a\n    command: x\n    mailOnError: always\n", "steps[0].mailOnError", "want true or false", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text
			if !strings.Contains(text, "steps:") {
				text += steps
			}
			_, err := Parse("bad.yaml", []byte(text))
			var problems Problems
			if !errors.As(err, &problems) || len(problems) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			p := problems[0]
			if p.Line != tc.line || p.Key != tc.key || !strings.Contains(p.Message, tc.message) {
				t.Errorf("got %v; want line %d, key %s, message with %q", p, tc.line, tc.key, tc.message)
			}
			if strings.Contains(p.Error(), "hunter2") {
				t.Errorf("the message shows the password: %v", p)
			}
		})
	}
}

func TestMaskSecretsHidesLiteralSMTPPasswords(t *testing.T) {
	for _, tc := range []struct {
		name, source, want string
	}{
		{"plain", "smtp:\n  host: mail\n  password: hunter2\nsteps: []\n",
			"smtp:\n  host: mail\n  password: <hidden>\nsteps: []\n"},
		{"a comment after it stays", "smtp:\n  password: hunter2 # the team's\n",
			"smtp:\n  password: <hidden> # the team's\n"},
		{"double quoted with an escape", "smtp:\n  password: \"hun\\\"ter2\"\n  port: 25\n",
			"smtp:\n  password: <hidden>\n  port: 25\n"},
		{"single quoted", "smtp:\n  password: 'it''s-s3cret'\n",
			"smtp:\n  password: <hidden>\n"},
		{"a block over lines", "smtp:\n  password: |\n    hunter2\n    more\n\n  port: 25\n",
			"smtp:\n  password: <hidden>\n\n  port: 25\n"},
		{"flow style", "smtp: {host: mail, password: hunter2, port: 25}\n",
			"smtp: {host: mail, password: <hidden>, port: 25}\n"},
		{"a copy elsewhere", "# old one: hunter2\nsmtp:\n  password: hunter2\n",
			"# old one: <hidden>\nsmtp:\n  password: <hidden>\n"},
		{"from an anchor", "base: &mail\n  host: mail\n  password: hunter2\nsmtp: *mail\n",
			"base: &mail\n  host: mail\n  password: <hidden>\nsmtp: *mail\n"},
		{"in a later document", "steps: []\n---\nname: b\nsmtp:\n  password: hunter2\n",
			"steps: []\n---\nname: b\nsmtp:\n  password: <hidden>\n"},
		{"non-ASCII before it on the line", "smtp: {host: mäil, password: hunter2}\n",
			"smtp: {host: mäil, password: <hidden>}\n"},
		{"a variable stays", "smtp:\n  password: ${SMTP_PASS}\n", "smtp:\n  password: ${SMTP_PASS}\n"},
		{"a quoted variable stays", "smtp:\n  password: \"$SMTP_PASS\"\n", "smtp:\n  password: \"$SMTP_PASS\"\n"},
		{"more than a variable is masked", "smtp:\n  password: ${A}hunter2\n", "smtp:\n  password: <hidden>\n"},
		{"a password key outside smtp is not smtp's", "env:\n  - password: x\n", "env:\n  - password: x\n"},
		{"not YAML: every password line", "smtp:\n  password: hunter2\n  port: [\n", "smtp:\n  password: <hidden>\n  port: [\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MaskSecrets(tc.source); got != tc.want {
				t.Errorf("MaskSecrets:\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

// MaskSecrets never panics, and a file Parse accepts keeps none of its
// literal SMTP passwords once masked.
func FuzzMaskSecrets(f *testing.F) {
	f.Add("smtp:\n  host: mail\n  password: hunter2\nsteps:\n  - name: a\n    command: x\n")
	f.Add("smtp: {password: \"a\\tb\"}\nsteps:\n  - name: a\n    command: x\n")
	f.Add("smtp:\n  password: >\n    folded\n    lines\nsteps:\n  - name: a\n    command: x\n")
	f.Add("smtp:\n  password: plain\n    continued\nsteps:\n  - name: a\n    command: x\n")
	f.Add("x: &p 'it''s'\nsmtp:\n  password: *p\nsteps:\n  - name: a\n    command: x\n")
	f.Add("steps:\n  - name: a\n    type: ssh\n    with: {user: u, host: h, password: \"p\\nw\"}\n    command: x\n")
	f.Add("handlerOn:\n  exit:\n    executor: {type: ssh, config: {user: u, host: h, password: pw}}\n    command: x\nsteps:\n  - name: a\n    command: x\n")
	f.Fuzz(func(t *testing.T, source string) {
		masked := MaskSecrets(source)
		file, err := Parse("fuzz.yaml", []byte(source))
		if err != nil {
			return
		}
		for _, dag := range file.Dags {
			passwords := []string{dag.GetSmtp().GetPassword()}
			steps := append(append([]*daguhav1.StepSpec(nil), dag.GetSteps()...), dag.GetHandlerOn().GetSuccess(), dag.GetHandlerOn().GetFailure(),
				dag.GetHandlerOn().GetCancel(), dag.GetHandlerOn().GetExit(), dag.GetHandlerOn().GetInit())
			for _, step := range steps {
				var settings struct{ Password string }
				if json.Unmarshal([]byte(step.GetExecutorConfigJson()), &settings) == nil {
					passwords = append(passwords, settings.Password)
				}
			}
			for _, password := range passwords {
				if password == "" || variableOnly.MatchString(password) || strings.Contains(SecretMask, password) {
					continue
				}
				if strings.Contains(masked, password) {
					t.Fatalf("password %q still in the masked text:\n%s", password, masked)
				}
			}
		}
	})
}
