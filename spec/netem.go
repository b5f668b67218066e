package spec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Netem is a link impairment (x-foldup.netem of a network, a service or
// a VM), as tc's netem applies it to a member's port.
type Netem struct {
	Delay     time.Duration
	Jitter    time.Duration
	Loss      float64 // percent
	Duplicate float64 // percent
	Corrupt   float64 // percent
	Rate      uint64  // bytes per second
	// Direction is which frames: to the member (NetemTo, the default),
	// from it (NetemFrom), or both.
	Direction string
}

// Netem directions.
const (
	NetemTo   = "to"
	NetemFrom = "from"
	NetemBoth = "both"
)

// NetemDefaultPercent is what duplicate and corrupt mean written without
// a value: netem's examples' 1%.
const NetemDefaultPercent = 1

// MarshalYAML writes a Netem as the file says it, so that config's output
// loads again as the same.
func (n *Netem) MarshalYAML() (any, error) {
	m := map[string]string{}
	if n.Delay > 0 {
		m["delay"] = n.Delay.String()
	}
	if n.Jitter > 0 {
		m["jitter"] = n.Jitter.String()
	}
	if n.Loss > 0 {
		m["loss"] = pct(n.Loss)
	}
	if n.Duplicate > 0 {
		m["duplicate"] = pct(n.Duplicate)
	}
	if n.Corrupt > 0 {
		m["corrupt"] = pct(n.Corrupt)
	}
	if n.Rate > 0 {
		m["rate"] = FormatRate(n.Rate)
	}
	if n.Direction != "" && n.Direction != NetemTo {
		m["direction"] = n.Direction
	}
	return m, nil
}

// String is the impairment in tc's words: "delay 50ms 5ms loss 1% rate 10mbit".
func (n *Netem) String() string {
	if n == nil {
		return ""
	}
	var parts []string
	if n.Delay > 0 {
		parts = append(parts, "delay "+n.Delay.String())
		if n.Jitter > 0 {
			parts = append(parts, n.Jitter.String())
		}
	}
	if n.Loss > 0 {
		parts = append(parts, "loss "+pct(n.Loss))
	}
	if n.Duplicate > 0 {
		parts = append(parts, "duplicate "+pct(n.Duplicate))
	}
	if n.Corrupt > 0 {
		parts = append(parts, "corrupt "+pct(n.Corrupt))
	}
	if n.Rate > 0 {
		parts = append(parts, "rate "+FormatRate(n.Rate))
	}
	if n.Direction == NetemFrom || n.Direction == NetemBoth {
		parts = append(parts, "("+n.Direction+")")
	}
	return strings.Join(parts, " ")
}

// pct is a percentage as the file and tc write it: 1%, 0.5%.
func pct(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" }

// FormatRate is bytes per second in tc's bit units.
func FormatRate(bps uint64) string {
	bits := bps * 8
	for _, u := range []struct {
		name string
		n    uint64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bits >= u.n && bits%u.n == 0 {
			return strconv.FormatUint(bits/u.n, 10) + u.name
		}
	}
	return strconv.FormatUint(bits, 10) + "bit"
}

// ParseRate reads a rate as tc does: bit, kbit, mbit, gbit (bits per
// second, powers of ten), bps, kbps, mbps, gbps (bytes per second); a
// bare number is bits per second.
func ParseRate(s string) (uint64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	units := []struct {
		suffix string
		bytes  float64
	}{{"gbps", 1e9}, {"mbps", 1e6}, {"kbps", 1e3}, {"bps", 1}, {"gbit", 1e9 / 8}, {"mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"bit", 1.0 / 8}}
	mult := 1.0 / 8
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.bytes
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("not a rate: a number and bit, kbit, mbit, gbit, bps, kbps, mbps or gbps")
	}
	return uint64(v * mult), nil
}

// ParsePercent reads 1%, 1.5% or a bare number (percent).
func ParsePercent(s string) (float64, error) { return parsePercent(s) }

// parsePercent reads 1%, 1.5% or a bare number (percent); nil or true is
// NetemDefaultPercent.
func parsePercent(v any) (float64, error) {
	var f float64
	switch v := v.(type) {
	case nil:
		return NetemDefaultPercent, nil
	case bool:
		if v {
			return NetemDefaultPercent, nil
		}
		return 0, nil
	case int:
		f = float64(v)
	case float64:
		f = v
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), "%"), 64); err != nil {
			return 0, fmt.Errorf("%q is not a percentage", v)
		}
	default:
		return 0, fmt.Errorf("%v is not a percentage", v)
	}
	if f < 0 || f > 100 {
		return 0, fmt.Errorf("%v%% is not between 0 and 100%%", f)
	}
	return f, nil
}

// netem decodes an x-foldup.netem mapping at path.
func (d *foldupDecoder) netem(path []string, v any) *Netem {
	m, ok := v.(map[string]any)
	if !ok {
		d.errorf(path, "must be a mapping of delay, jitter, loss, rate, duplicate, corrupt and direction")
		return nil
	}
	n := &Netem{Direction: NetemTo}
	at := func(k string) []string { return append(append([]string{}, path...), k) }
	dur := func(k string) time.Duration {
		s, ok := m[k].(string)
		if !ok {
			d.errorf(at(k), "must be a duration, as 50ms")
			return 0
		}
		t, err := time.ParseDuration(s)
		if err != nil || t < 0 {
			d.errorf(at(k), "%q is not a duration, as 50ms", s)
		}
		return t
	}
	for k, val := range m {
		var err error
		switch k {
		case "delay":
			n.Delay = dur(k)
		case "jitter":
			n.Jitter = dur(k)
		case "loss":
			n.Loss, err = parsePercent(val)
		case "duplicate":
			n.Duplicate, err = parsePercent(val)
		case "corrupt":
			n.Corrupt, err = parsePercent(val)
		case "rate":
			s := fmt.Sprint(val)
			n.Rate, err = ParseRate(s)
		case "direction":
			s, _ := val.(string)
			switch s {
			case NetemTo, NetemFrom, NetemBoth:
				n.Direction = s
			default:
				err = fmt.Errorf("%q is not to, from or both", val)
			}
		default:
			d.keyErrorf(at(k), "not a netem setting: delay, jitter, loss, rate, duplicate, corrupt or direction")
		}
		if err != nil {
			d.errorf(at(k), "%v", err)
		}
	}
	if n.Jitter > 0 && n.Delay == 0 {
		d.errorf(at("jitter"), "needs a delay to vary")
	}
	return n
}
