package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Issue #26: the memory of one ADD stays near the configuration's size.
// Each shape is written to a file, host-local ADD runs on it (as the
// runtime runs it: a child process reading the configuration on stdin),
// and the child's peak RSS (rusage Maxrss) is checked against
//
//	baseline + 2.5 × size + 24 B × ranges + 1 KiB × range sets
//
// where baseline is the peak of an ADD of a one-range configuration.
//
//   - 2.5 × size: the configuration's text is held whole (skel reads all of
//     stdin: io.ReadAll's pieces and the final copy are both alive at the
//     end of the read, ~2.3 × size), parsed beside it; no generic map or
//     second copy of it is made. Past 1 MB the read's garbage is given back
//     and the collector runs at GOGC 25 (main.go's boundMemory), so what is
//     parsed from the text does not double the heap on top of it: the peak
//     is that of the read.
//   - 24 B per range: a range written as a subnet alone is kept in 5 bytes
//     (17 in IPv6) in its set and 8 in the index by address, against ~27 B
//     of JSON; one with its own bounds in 16 more (52 in IPv6), against
//     ~85 B of JSON, within the 2.5 × size term.
//   - 1 KiB per range set: ADD hands out one address per set, so its lease,
//     its allocation and its entry in the result (~95 B of indented JSON
//     per set, ~3 × the set's configuration) are alive at once.
//
// See docs/performance.md ("Memory of a large configuration").
func TestAddMemoryOfLargeConfigs(t *testing.T) {
	if testing.Short() {
		t.Skip("writes configurations of tens of MB")
	}
	dir := t.TempDir()
	type shape struct {
		name         string
		ranges, sets int
		write        func(w *bufio.Writer, dataDir string) (ranges, sets int)
	}
	const mb = 1 << 20
	head := func(w *bufio.Writer, dataDir string) {
		fmt.Fprintf(w, `{"cniVersion":"1.0.0","name":"memnet","type":"host-local","ipam":{"type":"host-local","dataDir":%q,`, dataDir)
	}
	// sets of n ranges each (/30s in 10.0.0.0/8), until total ranges.
	rangeSets := func(total, perSet int) func(w *bufio.Writer, dataDir string) (int, int) {
		return func(w *bufio.Writer, dataDir string) (int, int) {
			head(w, dataDir)
			w.WriteString(`"ranges":[`)
			sets := 0
			for i := 0; i < total; i++ {
				switch {
				case i == 0:
					w.WriteString("[")
					sets++
				case i%perSet == 0:
					w.WriteString("],[")
					sets++
				default:
					w.WriteString(",")
				}
				a := i * 4
				fmt.Fprintf(w, `{"subnet":"10.%d.%d.%d/30"}`, a>>16&255, a>>8&255, a&255)
			}
			w.WriteString("]]}}")
			return total, sets
		}
	}
	oneRange := `"ranges":[[{"subnet":"10.1.0.0/16"}]]}`
	shapes := []shape{
		{name: "opaque string", write: func(w *bufio.Writer, dataDir string) (int, int) {
			head(w, dataDir)
			fmt.Fprintf(w, `%s,"extra":"%s"}`, oneRange, strings.Repeat("x", 32*mb))
			return 1, 1
		}},
		{name: "opaque objects", write: func(w *bufio.Writer, dataDir string) (int, int) {
			head(w, dataDir)
			w.WriteString(oneRange + `,"extra":[`)
			for i, n := 0, 0; n < 32*mb; i++ {
				s := fmt.Sprintf(`{"k":%d,"v":"value-%d","l":[1,2,3]},`, i, i)
				n += len(s)
				w.WriteString(s)
			}
			w.WriteString(`{}]}`)
			return 1, 1
		}},
		{name: "400k ranges in 40 sets", write: rangeSets(400_000, 10_000)},
		{name: "20k range sets", write: rangeSets(20_000, 1)},
		{name: "200k ranges in one set", write: rangeSets(200_000, 200_000)},
		{name: "100k ranges with their own bounds in 10 sets", write: func(w *bufio.Writer, dataDir string) (int, int) {
			head(w, dataDir)
			w.WriteString(`"ranges":[`)
			ip := func(a int) string { return fmt.Sprintf("10.%d.%d.%d", a>>16&255, a>>8&255, a&255) }
			for i := 0; i < 100_000; i++ {
				switch {
				case i == 0:
					w.WriteString("[")
				case i%10_000 == 0:
					w.WriteString("],[")
				default:
					w.WriteString(",")
				}
				a := i * 8
				fmt.Fprintf(w, `{"subnet":"%s/29","rangeStart":"%s","rangeEnd":"%s","gateway":"%s"}`, ip(a), ip(a+2), ip(a+5), ip(a+6))
			}
			w.WriteString("]]}}")
			return 100_000, 10
		}},
	}
	peak := func(conf string) (int64, int64) {
		f, err := os.Open(conf)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		// Through a fresh copy of this test program (reportPeak): a child
		// started from this process would count this process's own peak.
		cmd := exec.Command(os.Args[0])
		cmd.Env = []string{peakOfEnv + "=" + binary, "CNI_COMMAND=ADD", "CNI_CONTAINERID=mem", "CNI_NETNS=/var/run/netns/flatcni-test-unused", "CNI_IFNAME=eth0", "CNI_PATH=/nonexistent"}
		cmd.Stdin = f
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ADD of %s: %v: %s", conf, err, stderr.String())
		}
		var kb int64
		if _, err := fmt.Sscan(stdout.String(), &kb); err != nil {
			t.Fatalf("peak of ADD of %s: %q: %v", conf, stdout.String(), err)
		}
		return kb << 10, st.Size()
	}
	write := func(name string, fn func(w *bufio.Writer, dataDir string) (int, int)) (string, int, int) {
		path := filepath.Join(dir, name+".json")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		ranges, sets := fn(w, filepath.Join(dir, name+".leases"))
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return path, ranges, sets
	}
	tiny, _, _ := write("tiny", rangeSets(1, 1))
	var baseline int64
	for i := 0; i < 3; i++ {
		os.RemoveAll(filepath.Join(dir, "tiny.leases"))
		baseline = max(baseline, func() int64 { p, _ := peak(tiny); return p }())
	}
	t.Logf("baseline (one range): %.1f MB", float64(baseline)/mb)
	for i, s := range shapes {
		conf, ranges, sets := write(fmt.Sprintf("shape%d", i), s.write)
		got, size := peak(conf)
		os.Remove(conf)
		os.RemoveAll(filepath.Join(dir, fmt.Sprintf("shape%d.leases", i)))
		limit := baseline + size*5/2 + 24*int64(ranges) + 1024*int64(sets)
		t.Logf("%s: configuration %.1f MB, peak %.1f MB (%.2f × size above the baseline), limit %.1f MB",
			s.name, float64(size)/mb, float64(got)/mb, float64(got-baseline)/float64(size), float64(limit)/mb)
		if got > limit {
			t.Errorf("%s: ADD of a %.1f MB configuration (%d ranges in %d sets) peaked at %.1f MB, over %.1f MB",
				s.name, float64(size)/mb, ranges, sets, float64(got)/mb, float64(limit)/mb)
		}
	}
}

// peakOfEnv names the program reportPeak runs.
const peakOfEnv = "FLATCNI_TEST_PEAK_OF"

// reportPeak runs a program with this process's stdin, environment (less
// peakOfEnv) and stderr, its stdout discarded, and prints its peak RSS in
// kB (rusage Maxrss): it runs in a fresh, small copy of the test program,
// as Linux counts the memory of the process a child is started from
// (vfork) in the child's Maxrss.
func reportPeak(bin string) int {
	cmd := exec.Command(bin)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, peakOfEnv+"=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, nil, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
	return cmd.ProcessState.ExitCode()
}
