// Command hugetext prepares plugin binaries so that the kernel maps their
// code and read-only data with 2 MiB pages (see package
// internal/hugetext): -pad extends their read-only segments to whole 2 MiB
// blocks (the binary must be linked with -R 0x200000), -warm reloads them into
// the page cache in 2 MiB folios.
//
// Usage:
//
//	hugetext [-pad] [-warm] FILE...
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/flatcni/plugins/internal/hugetext"
)

func main() {
	pad := flag.Bool("pad", false, "extend read-only and executable segments to whole 2 MiB blocks")
	warm := flag.Bool("warm", false, "reload the files into the page cache in 2 MiB folios")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: hugetext [-pad] [-warm] FILE...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 || !*pad && !*warm {
		flag.Usage()
		os.Exit(2)
	}
	failed := false
	for _, path := range flag.Args() {
		if err := run(path, *pad, *warm); err != nil {
			fmt.Fprintf(os.Stderr, "hugetext: %v\n", err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func run(path string, pad, warm bool) error {
	var notes []string
	if pad {
		n, err := hugetext.Pad(path)
		if err != nil {
			return err
		}
		notes = append(notes, fmt.Sprintf("%d segments padded", n))
	}
	if warm {
		huge, err := hugetext.Warm(path)
		if err != nil {
			return err
		}
		notes = append(notes, fmt.Sprintf("%d MiB cached in huge pages", huge>>20))
	}
	fmt.Printf("hugetext: %s: %s\n", path, strings.Join(notes, ", "))
	return nil
}
