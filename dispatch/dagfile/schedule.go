package dagfile

import (
	"fmt"
	"strings"
	"time"
	// Every server must read a zone name the same way, whatever the
	// machine's own zone files: a DAG one server accepts, any leader must
	// be able to schedule.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a cron expression: five fields (minute hour
// day-of-month month day-of-week), or six with seconds first; or a
// descriptor (@yearly, @monthly, @weekly, @daily, @midnight, @hourly,
// @every DURATION). It may start with "CRON_TZ=Zone " (or "TZ=Zone ") to
// be read in that IANA zone; without one, the schedule is in the zone of
// the times it is evaluated at (the servers' tz setting, else local).
func ParseSchedule(expr string) (schedule cron.Schedule, err error) {
	spec := strings.TrimSpace(expr)
	if spec == "" {
		return nil, fmt.Errorf("empty schedule")
	}
	body := spec
	if zone, rest, ok := cutZone(spec); ok {
		if zone == "" {
			return nil, fmt.Errorf("%q: no zone after the =", spec)
		}
		if zone == "Local" {
			return nil, fmt.Errorf("%q: name a zone such as Europe/Berlin; Local differs from server to server", spec)
		}
		if _, err := time.LoadLocation(zone); err != nil {
			return nil, fmt.Errorf("%q: unknown time zone %q", spec, zone)
		}
		if rest == "" {
			return nil, fmt.Errorf("%q: a cron expression must follow the zone, after a space", spec)
		}
		if _, _, again := cutZone(rest); again {
			return nil, fmt.Errorf("%q: more than one time zone", spec)
		}
		body = rest
	}
	if every, ok := strings.CutPrefix(body, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(every))
		if err != nil {
			return nil, fmt.Errorf("%q: %v", spec, err)
		}
		if d < time.Second {
			return nil, fmt.Errorf("%q: @every needs at least 1s", spec)
		}
	}
	// The cron parser is outside input's first reader here; a panic in it
	// must not take a server down with it.
	defer func() {
		if r := recover(); r != nil {
			schedule, err = nil, fmt.Errorf("%q: not a cron expression (%v)", spec, r)
		}
	}()
	schedule, err = cronParser.Parse(normalizeSchedule(spec))
	if err != nil {
		return nil, fmt.Errorf("%q: %v", spec, err)
	}
	return schedule, nil
}

// cutZone splits "CRON_TZ=Zone rest" or "TZ=Zone rest".
func cutZone(spec string) (zone, rest string, ok bool) {
	after, found := strings.CutPrefix(spec, "CRON_TZ=")
	if !found {
		after, found = strings.CutPrefix(spec, "TZ=")
	}
	if !found {
		return "", "", false
	}
	end := strings.IndexAny(after, " \t")
	if end < 0 {
		return after, "", true
	}
	return after[:end], strings.TrimSpace(after[end:]), true
}

// normalizeSchedule is the form a schedule is stored in: trimmed, with a
// TZ= prefix written as CRON_TZ=, one space after the zone.
func normalizeSchedule(spec string) string {
	spec = strings.TrimSpace(spec)
	if zone, rest, ok := cutZone(spec); ok {
		return "CRON_TZ=" + zone + " " + rest
	}
	return spec
}
