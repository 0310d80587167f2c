package dagfile

import (
	"strings"
	"testing"
	"time"
)

func TestParseScheduleFiresAtTheRightTimes(t *testing.T) {
	// Monday 1 January 2024, midnight UTC. A schedule without a zone is
	// read in the zone of the time it is asked about.
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		expr string
		next time.Time
	}{
		{"0 2 * * *", from.Add(2 * time.Hour)},
		{"  */15 * * * *  ", from.Add(15 * time.Minute)},
		{"30 0 6 * * 1-5", from.Add(6*time.Hour + 30*time.Second)}, // seconds first
		{"0 0 12 * * SUN", time.Date(2024, 1, 7, 12, 0, 0, 0, time.UTC)},
		{"CRON_TZ=Europe/Berlin 0 9 * * *", time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC)},
		{"TZ=America/New_York 0 9 * * *", time.Date(2024, 1, 1, 14, 0, 0, 0, time.UTC)},
		{"TZ=Asia/Tokyo\t15 30 8 * * *", time.Date(2024, 1, 1, 23, 30, 15, 0, time.UTC)},
		{"@hourly", from.Add(time.Hour)},
		{"@daily", from.Add(24 * time.Hour)},
		{"@monthly", time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)},
		{"@every 90s", from.Add(90 * time.Second)},
		{"@every 1h30m", from.Add(90 * time.Minute)},
		{"CRON_TZ=UTC @every 1m", from.Add(time.Minute)},
	} {
		schedule, err := ParseSchedule(tc.expr)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", tc.expr, err)
			continue
		}
		if got := schedule.Next(from); !got.Equal(tc.next) {
			t.Errorf("ParseSchedule(%q).Next(%s) = %s, want %s", tc.expr, from, got.UTC(), tc.next)
		}
	}
}

func TestParseScheduleRefusesBadExpressions(t *testing.T) {
	for _, tc := range []struct{ expr, message string }{
		{"", "empty schedule"},
		{"   ", "empty schedule"},
		{"* * * *", "expected 5 to 6 fields"},
		{"0 0 * * * * 2024", "expected 5 to 6 fields"},
		{"60 * * * *", "above maximum (59)"},
		{"0 25 * * *", "above maximum (23)"},
		{"0 0 * 13 *", "above maximum (12)"},
		{"*/0 * * * *", "step"},
		{"0 0 * * MON-FUNDAY", "failed to parse"},
		{"@fortnightly", "unrecognized descriptor"},
		{"@every", "unrecognized descriptor"},
		{"@every soon", "invalid duration"},
		{"@every 0s", "at least 1s"},
		{"@every -1m", "at least 1s"},
		{"@every 500ms", "at least 1s"},
		{"CRON_TZ=Nowhere/City 0 * * * *", `unknown time zone "Nowhere/City"`},
		{"CRON_TZ=Europe/Berlin", "a cron expression must follow the zone"},
		{"TZ=", "no zone after the ="},
		{"TZ= 0 * * * *", "no zone after the ="},
		{"CRON_TZ=Local 0 * * * *", "Local differs from server to server"},
		{"CRON_TZ=UTC TZ=UTC 0 * * * *", "more than one time zone"},
	} {
		_, err := ParseSchedule(tc.expr)
		if err == nil {
			t.Errorf("ParseSchedule(%q) accepted it", tc.expr)
			continue
		}
		if !strings.Contains(err.Error(), tc.message) {
			t.Errorf("ParseSchedule(%q) = %q, want it to say %q", tc.expr, err, tc.message)
		}
	}
}

func TestSchedulesAreStoredWithCronTZ(t *testing.T) {
	f := mustParse(t, "s.yaml", "schedule:\n  - ' TZ=Europe/Paris   0 3 * * * '\n  - '@daily'\nsteps:\n  - {name: a, command: x}\n")
	got := strings.Join(f.Dags[0].GetSchedule(), "|")
	if want := "CRON_TZ=Europe/Paris 0 3 * * *|@daily"; got != want {
		t.Errorf("schedules = %q, want %q", got, want)
	}
	for _, s := range f.Dags[0].GetSchedule() {
		if _, err := ParseSchedule(s); err != nil {
			t.Errorf("stored schedule %q does not parse: %v", s, err)
		}
	}
}
