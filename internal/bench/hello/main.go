// Command hello is the start-up floor for the VERSION benchmark: the
// smallest Go program that writes a line, built with the plugins' flags.
package main

import "os"

func main() { os.Stdout.WriteString("hello\n") }
