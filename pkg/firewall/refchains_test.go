package firewall

import "testing"

func TestForwardInsertPos(t *testing.T) {
	for _, c := range []struct {
		lines []string
		want  int
	}{
		{nil, 1},
		{[]string{"-P FORWARD ACCEPT"}, 1},
		{[]string{"-P FORWARD DROP", "-A FORWARD -j DOCKER-USER"}, 1},
		{[]string{"-P FORWARD ACCEPT", `-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD`}, 2},
		{[]string{"-P FORWARD ACCEPT",
			`-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1`,
			`-A FORWARD -m comment --comment "flatcni net=a cfg=1" -j FLATCNI-a`,
			`-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD`,
			"-A FORWARD -j DOCKER-USER"}, 4},
	} {
		if got := forwardInsertPos(c.lines); got != c.want {
			t.Errorf("forwardInsertPos(%q) = %d, want %d", c.lines, got, c.want)
		}
	}
}
